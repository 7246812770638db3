"""A length-prefixed server with its size limit off by one.

Bug: it refuses a length of 1 MiB or more (`>=`), where the protocol
refuses only lengths above 1 MiB, so a message of exactly 1,048,576 bytes
is refused. The `large` probe must fail with the hint that exactly 1 MiB is
allowed (not the hint about reading in a loop); the others pass.

Usage: python3 broken_limit_off_by_one.py PORT
"""

import socket
import struct
import sys

MAX_LENGTH = 1024 * 1024


def recv_exactly(conn, n):
    data = bytearray()
    while len(data) < n:
        chunk = conn.recv(min(n - len(data), 65536))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def serve(conn):
    while True:
        header = recv_exactly(conn, 4)
        if len(header) < 4:
            return
        (length,) = struct.unpack("!I", header)
        if length >= MAX_LENGTH:  # the bug: 1 MiB itself is allowed
            return
        message = recv_exactly(conn, length)
        if len(message) < length:
            return
        answer = message[::-1]
        conn.sendall(struct.pack("!I", len(answer)) + answer)


def main():
    port = int(sys.argv[1])
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, _ = listener.accept()
            with conn:
                try:
                    serve(conn)
                except OSError:
                    pass


if __name__ == "__main__":
    main()
