"""A TCP client for `netlab check tcp-client`: the reference answer.

Usage: python3 good.py HOST PORT

It connects, sends one line, reads the reply up to its newline (the
reply may arrive in several pieces), closes with FIN and exits with 0.
"""

import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])

    # create_connection() does socket() and connect() in one call.
    with socket.create_connection((host, port), timeout=10) as sock:
        # sendall() loops until every byte is in the kernel's send buffer;
        # send() alone may take only part of them.
        sock.sendall(b"hello from my client\n")

        # One recv() returns whatever has arrived so far, maybe only part
        # of the reply: keep reading until the newline, or until recv()
        # returns b"" (the server closed its side).
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk

    # Leaving the with block called close(): nothing is left unread, so the
    # kernel sends FIN, not RST.
    print("reply:", reply.decode(errors="replace").rstrip("\n"))


if __name__ == "__main__":
    main()
