#!/usr/bin/env python3
"""BROKEN on purpose: the server connect()s its socket to its first client.

The bug: after the first datagram the server calls connect() with the
sender's address, to use send() and recv() as with TCP. A connected UDP
socket receives datagrams from that one peer only: the kernel delivers it
nothing from any other address. The first client (netlab's probe `echo`)
is served, nobody after it. netlab's probe `each-sender` must fail with
the socket's connected peer from /proc/net/udp as a kernel fact and a
hint against connect(); every later probe says "see each-sender".

Usage: python3 broken_connected.py PORT
"""
import socket
import sys


def main() -> None:
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    data, addr = sock.recvfrom(65507)
    sock.connect(addr)  # BUG: from now on only `addr` is heard
    sock.send(data)
    while True:
        data = sock.recv(65507)
        sock.send(data)


if __name__ == "__main__":
    main()
