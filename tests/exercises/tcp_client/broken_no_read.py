"""BROKEN on purpose: the client closes without reading the reply.

Bug: after sendall() it closes the socket at once, so the reply reaches a
closed socket and the client's kernel answers it with RST.
Caught by: the `reply` probe ("Call recv() and wait for the reply ...").

Usage: python3 broken_no_read.py HOST PORT
"""

import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"hello from my client\n")
        # BUG: no recv(): the with block closes the socket right away.
    print("sent")


if __name__ == "__main__":
    main()
