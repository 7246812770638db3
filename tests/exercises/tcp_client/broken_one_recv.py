"""BROKEN on purpose: the client takes one recv() for the whole reply.

Bug: a single recv() returns only what has arrived so far; the reply comes
in two pieces, and the client closes after the first, with the rest unread.
Caught by: the `reply` probe ("Keep calling recv() until the reply's newline ...").

Usage: python3 broken_one_recv.py HOST PORT
"""

import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"hello from my client\n")
        reply = sock.recv(4096)  # BUG: assumes one recv() is the whole reply
    print("reply:", reply.decode(errors="replace").rstrip("\n"))


if __name__ == "__main__":
    main()
