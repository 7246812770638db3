#!/usr/bin/env python3
"""A UDP client written the way the course's students write one.

Usage: udp_echo_client.py HOST PORT MESSAGE...
Sends each MESSAGE as one datagram ("" sends an empty one), waits for one
reply each, and prints every reply as a Python bytes literal on its own
line, with the address it came from. A reply that does not come within
5 seconds is printed as LOST.
"""
import socket
import sys


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    for message in sys.argv[3:]:
        sock.sendto(message.encode(), (host, port))
        try:
            data, sender = sock.recvfrom(65535)
        except socket.timeout:
            print("LOST")
            continue
        print(repr(data), "%s:%d" % sender)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
