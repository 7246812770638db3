"""BROKEN on purpose: a newline after each answer.

Bug: serve() frames its input correctly (it reads exactly 4 bytes, then
exactly the length), but sends b"\\n" after every answer, as if the answers
were lines. The client reads that byte as the first byte of the next
answer's length.
Caught by: the `one-message` probe, which reads on after the answer and
finds "1 byte came after it: 0x0a" (hint: "and nothing more"). Before, this
passed one-message, split-message and large, and merged failed with a
hint about recv_exactly() that the server already follows.

Usage: python3 broken_newline_after.py PORT
"""

import socket
import struct
import sys

MAX_LENGTH = 1024 * 1024


def recv_exactly(conn, count):
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve(conn):
    while True:
        header = recv_exactly(conn, 4)
        if header is None:
            return
        (length,) = struct.unpack("!I", header)
        if length > MAX_LENGTH:
            return
        message = recv_exactly(conn, length)
        if message is None:
            return
        answer = message[::-1]
        conn.sendall(struct.pack("!I", len(answer)) + answer + b"\n")  # BUG


def main():
    port = int(sys.argv[1])
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, addr = listener.accept()
            with conn:
                try:
                    serve(conn)
                except OSError as err:
                    print(f"{addr}: {err}")


if __name__ == "__main__":
    main()
