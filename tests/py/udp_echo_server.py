#!/usr/bin/env python3
"""A UDP echo server in the course's style, with a twist for the tests.

Usage: udp_echo_server.py COUNT [stranger]
Binds 127.0.0.1 on a port the kernel picks and prints that port on the
first line. Then it answers COUNT datagrams and exits. With "stranger",
before each echo a second socket (another port) sends the word
"stranger" to the same client, so the client sees a datagram from an
address it never wrote to.
"""
import socket
import sys


def main() -> int:
    count = int(sys.argv[1])
    with_stranger = len(sys.argv) > 2 and sys.argv[2] == "stranger"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    print(sock.getsockname()[1], flush=True)
    for _ in range(count):
        data, client = sock.recvfrom(65535)
        if with_stranger:
            other.sendto(b"stranger", client)
        sock.sendto(data, client)
    sock.close()
    other.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
