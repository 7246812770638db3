"""BROKEN on purpose: the answers of one recv() are joined with newlines.

Bug: serve() keeps a buffer and takes every whole message out of it
correctly, but sends the answers of one batch as b"\\n".join(answers), as
if they were lines. One answer alone is sent clean; two or more get a
newline between them, which the client reads as the start of a length.
Caught by: the `merged` probe: answer 1 comes right, then where answer 2's
length should be come 0x0a 0x00 0x00 0x00 (167772160 bytes), and the
report says bytes were added between the answers (hint: "and nothing
more"), not that the server loses bytes.

Usage: python3 broken_joined_answers.py PORT
"""

import socket
import struct
import sys

MAX_LENGTH = 1024 * 1024


def serve(conn):
    buffer = b""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        buffer += data
        answers = []
        while len(buffer) >= 4:
            (length,) = struct.unpack("!I", buffer[:4])
            if length > MAX_LENGTH:
                return
            if len(buffer) < 4 + length:
                break
            message = buffer[4 : 4 + length]
            buffer = buffer[4 + length :]
            answer = message[::-1]
            answers.append(struct.pack("!I", len(answer)) + answer)
        if answers:
            conn.sendall(b"\n".join(answers))  # BUG: a byte between answers


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
