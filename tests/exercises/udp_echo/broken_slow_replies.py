#!/usr/bin/env python3
"""BROKEN on purpose: the first replies come 1.2 s late.

The bug: the server sleeps 1.2 s before each reply (as if it did slow
work per datagram). To keep the test short it does so only for its
first three datagrams: netlab's `echo` (which waits long enough) and
the first two of `each-sender`. Every reply reaches its own client.
netlab's probe `each-sender` must fail with the "late" hint, naming
each reply as late (not "a second time", not as sent to another
client), and the later probes must wait their full time and pass.

Usage: python3 broken_slow_replies.py PORT
"""
import socket
import sys
import time


def main() -> None:
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    count = 0
    while True:
        data, addr = sock.recvfrom(65535)
        count += 1
        if count <= 3:
            time.sleep(1.2)  # the bug: slow work before the reply
        sock.sendto(data, addr)


if __name__ == "__main__":
    main()
