#!/usr/bin/env python3
"""A UDP echo server: every datagram goes back, unchanged, to its sender.

Usage: python3 good.py PORT   (netlab check udp-echo -- python3 good.py {port})
"""
import socket
import sys

# The largest payload one IPv4 UDP datagram can carry (65,535 minus the
# IP and UDP headers). A buffer this big never cuts a datagram; with a
# smaller one, recvfrom() returns the first bytes and the kernel throws
# the rest of that datagram away.
MAX_DATAGRAM = 65507


def main() -> None:
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # 127.0.0.1: reachable from this machine only. No listen(), no
    # accept(): this one socket receives from every client.
    sock.bind(("127.0.0.1", port))
    print(f"UDP echo server on 127.0.0.1:{port}", flush=True)
    while True:
        # Each call returns one whole datagram and the address it came
        # from. b"" is an empty datagram, not "the client left": UDP has
        # no connection to close, so the loop simply goes on.
        data, client = sock.recvfrom(MAX_DATAGRAM)
        # Bytes in, the same bytes out: no decode(), so any payload
        # (binary, invalid UTF-8, empty) is echoed as it came.
        # The reply goes to the address of *this* datagram's sender.
        sock.sendto(data, client)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
