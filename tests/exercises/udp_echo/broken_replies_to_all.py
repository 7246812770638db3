#!/usr/bin/env python3
"""BROKEN on purpose: each echo goes to every client ever heard from.

The bug: the server keeps the address of every client that wrote to it,
as a chat server does, and sends each echo to all of them. A client then
receives other clients' echoes as if they were its own replies. Only
netlab's probe `each-sender` has two clients at once, so it alone must
fail; a probe with one client still gets its own reply.

Usage: python3 broken_replies_to_all.py PORT
"""
import socket
import sys


def main() -> None:
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    clients = set()
    while True:
        data, client = sock.recvfrom(65507)
        clients.add(client)
        # BUG: the reply belongs to `client` alone.
        for known in clients:
            sock.sendto(data, known)


if __name__ == "__main__":
    main()
