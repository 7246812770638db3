#!/usr/bin/env python3
"""BROKEN on purpose: every echo has a newline added.

The bug: the server sends data + b"\n" back, as if UDP needed a line
ending (it does not: a datagram keeps its own boundaries). Every reply
reaches the right client, one byte longer. netlab's probe `echo` must
fail with the "send back exactly the bytes" hint, and so must
`each-sender`: a changed reply at the right client is a changed reply,
not a reply that went to another client, so the later probes name the
change too (empty, large: "came back changed") and never say "see
each-sender".

Usage: python3 broken_adds_newline.py PORT
"""
import socket
import sys


def main() -> None:
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        data, addr = sock.recvfrom(65535)
        sock.sendto(data + b"\n", addr)  # the bug: one byte more


if __name__ == "__main__":
    main()
