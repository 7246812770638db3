#!/usr/bin/env python3
"""A correct UDP echo server with a tiny receive buffer (SO_RCVBUF 1024).

It reads with recvfrom(2048), so a 60,000-byte datagram comes back cut
to 2048 bytes, and it pauses 20 ms before each recvfrom(). While the
60,000-byte datagram waits in its buffer, the kernel drops any datagram
that arrives after it. netlab's probe `large` must send its follow-up
only after the reply to the large one and pass (it used to send both
back to back and fail at random with the MSG_TRUNC hint). `burst` may
warn: most of a burst cannot fit in such a buffer.

Usage: python3 good_tiny_buffer.py PORT
"""
import socket
import sys
import time


def main() -> None:
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.bind(("127.0.0.1", port))
    while True:
        time.sleep(0.02)
        data, addr = sock.recvfrom(2048)
        sock.sendto(data, addr)


if __name__ == "__main__":
    main()
