#!/usr/bin/env python3
"""BROKEN on purpose: a datagram longer than the buffer ends the server.

The bug: the server reads with a 4096-byte buffer and, rightly, asks the
kernel whether the datagram was cut (MSG_TRUNC in the flags recvmsg()
returns). But it raises instead of carrying on, so one oversized
datagram stops the server for every client. netlab's probe `large` must
fail; the probes before it send small datagrams and pass.

Usage: python3 broken_small_buffer_crash.py PORT
"""
import socket
import sys

BUFSIZE = 4096


def main() -> None:
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        data, _ancillary, flags, client = sock.recvmsg(BUFSIZE)
        if flags & socket.MSG_TRUNC:
            # BUG: the rest of this datagram is gone, but that is no
            # reason to stop serving everyone else.
            raise ValueError(f"datagram from {client} is longer than {BUFSIZE} bytes")
        sock.sendto(data, client)


if __name__ == "__main__":
    main()
