"""BROKEN on purpose: the client's line has no newline at its end.

Bug: it sends b"hello" and waits for the reply, but the server answers only
a complete line, so both sides wait until the checker gives up.
Caught by: the `request` probe ("End the line with a newline ...").

Usage: python3 broken_no_newline.py HOST PORT
"""

import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"hello from my client")  # BUG: no b"\n"
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    print("reply:", reply.decode(errors="replace").rstrip("\n"))


if __name__ == "__main__":
    main()
