#!/usr/bin/env python3
"""A plain TCP client, written the way the course's students write one.

Usage: echo_client.py HOST PORT MESSAGE
Sends MESSAGE, reads until as many bytes came back, prints them, closes.
"""
import socket
import sys


def main() -> int:
    host, port, message = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(message)
        received = b""
        while len(received) < len(message):
            chunk = sock.recv(1024)
            if not chunk:
                break
            received += chunk
    sys.stdout.write(received.decode("utf-8", "replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
