#!/usr/bin/env python3
"""Broadcast one datagram on this machine, the way the course's sender does.

Usage: broadcast_send.py PORT HEX
Sends the bytes given in hex (so a test can send invalid UTF-8) to
127.255.255.255:PORT with SO_BROADCAST set, and prints the sender's address.
"""
import socket
import sys


def main() -> int:
    port, payload = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.sendto(payload, ("127.255.255.255", port))
        host, sender_port = sock.getsockname()
    print(f"{host}:{sender_port}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
