"""BROKEN on purpose: the 4-byte length is read with a single recv(4).

Bug: recv(4) may return 1, 2 or 3 bytes when the length arrives in pieces;
struct.unpack() then raises, and the server dies. The messages themselves
are read correctly with recv_exactly().
Caught by: the `split-header` probe ("recv(4) may return fewer than 4 bytes ...").

Usage: python3 broken_short_header.py PORT
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
        header = conn.recv(4)  # BUG: may return fewer than 4 bytes
        if not header:
            return
        (length,) = struct.unpack("!I", header)
        if length > MAX_LENGTH:
            print(f"refused a message of {length} bytes")
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
            conn, addr = listener.accept()
            with conn:
                try:
                    serve(conn)
                except OSError as err:
                    print(f"{addr}: {err}")


if __name__ == "__main__":
    main()
