#!/usr/bin/env python3
"""BROKEN on purpose: the server treats every datagram as UTF-8 text.

The bug: data.decode() raises UnicodeDecodeError on bytes that are not
UTF-8, and nothing catches it, so the first binary datagram ends the
server. netlab's probe `binary` must fail; the probes before it send
text and pass.

Usage: python3 broken_decode.py PORT
"""
import socket
import sys


def main() -> None:
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        data, client = sock.recvfrom(65507)
        text = data.decode()  # BUG: raises on b"\xff"
        print(f"{client}: {text!r}", flush=True)
        sock.sendto(text.encode(), client)


if __name__ == "__main__":
    main()
