#!/usr/bin/env python3
"""A broadcast listener, the way the course's receiver is written.

Usage: broadcast_listen.py
Binds 0.0.0.0 on a port the kernel picks, with SO_REUSEADDR, prints the
port, then waits (at most 10 s) for one datagram and prints it in hex
with its sender: "HEX IP:PORT".
"""
import socket
import sys


def main() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", 0))
        print(sock.getsockname()[1], flush=True)
        sock.settimeout(10)
        data, (host, port) = sock.recvfrom(65536)
    print(f"{data.hex()} {host}:{port}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
