#!/usr/bin/env python3
"""BROKEN on purpose: every echo goes to the first client ever heard from.

The bug: the server keeps the address of the first datagram in a
variable and sends every reply there, instead of to the address that
came with each datagram. The first client (netlab's probe `echo`) is
served; after it has gone, the replies go to an address nobody reads.
netlab's probe `each-sender` must fail (hint: do not keep the first
client's address), and every later probe must say "see each-sender"
instead of blaming its own subject (binary, empty, large, burst).

Usage: python3 broken_first_client.py PORT
"""
import socket
import sys


def main() -> None:
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    client = None
    while True:
        data, addr = sock.recvfrom(65507)
        if client is None:
            client = addr  # BUG: the reply belongs to `addr`, every time
        sock.sendto(data, client)


if __name__ == "__main__":
    main()
