#!/usr/bin/env python3
"""BROKEN on purpose: an empty datagram ends the server.

The bug: the loop was copied from a TCP server, where recv() returning
b"" means the client closed the connection. In UDP b"" is simply a
datagram with no bytes in it, and this server quits on it. netlab's
probe `empty` must fail; the probes before it pass.

Usage: python3 broken_dies_on_empty.py PORT
"""
import socket
import sys


def main() -> None:
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        data, client = sock.recvfrom(65507)
        if not data:  # BUG: TCP's end-of-stream test, wrong for UDP
            print("client closed, stopping", flush=True)
            break
        sock.sendto(data, client)
    sock.close()


if __name__ == "__main__":
    main()
