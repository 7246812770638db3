"""BROKEN on purpose: one recv() is taken for one whole message.

Bug: serve() reads whatever one recv() returns and treats it as exactly one
framed message. Messages written together are merged (all but the first
are lost), and a message cut in pieces is answered with only its start.
Caught by: the `merged` probe ("One recv() can return several messages ...");
it also fails split-message, large and pipelined, and a length that arrives
in pieces (split-header) makes struct.unpack() raise and the server die.

Usage: python3 broken_one_recv.py PORT
"""

import socket
import struct
import sys

MAX_LENGTH = 1024 * 1024


def serve(conn):
    while True:
        data = conn.recv(65536)  # BUG: one recv() is not one message
        if not data:
            return
        (length,) = struct.unpack("!I", data[:4])
        if length > MAX_LENGTH:
            print(f"refused a message of {length} bytes")
            return
        answer = data[4 : 4 + length][::-1]
        conn.sendall(struct.pack("!I", len(answer)) + answer)


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
