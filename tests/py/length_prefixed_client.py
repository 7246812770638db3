#!/usr/bin/env python3
"""Send messages framed with a 4-byte big-endian length prefix.

Usage: length_prefixed_client.py HOST PORT MESSAGE...
The prefix of the last message is sent in two pieces, with a pause between
them, so the receiver sees a length prefix arrive split.
"""
import socket
import struct
import sys
import time


def frame(text: str) -> bytes:
    payload = text.encode("utf-8")
    return struct.pack("!I", len(payload)) + payload


def main() -> int:
    host, port, messages = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    with socket.create_connection((host, port), timeout=10) as sock:
        for text in messages[:-1]:
            sock.sendall(frame(text))
        last = frame(messages[-1])
        sock.sendall(last[:2])
        time.sleep(0.2)
        sock.sendall(last[2:])
        sock.shutdown(socket.SHUT_WR)
        # Wait for the receiver to close, so it has read everything.
        sock.recv(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
