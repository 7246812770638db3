"""BROKEN on purpose: the length from the network is trusted.

Bug: there is no limit on the length, so a header of ff ff ff ff makes the
server wait for 4 GB that never come; serving one client at a time, it
then never gets to the next client.
Caught by: the `oversized` probe ("Right after unpacking the length, refuse ...").

Usage: python3 broken_no_length_check.py PORT
"""

import socket
import struct
import sys


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
        # BUG: no check of length against a limit before reading the message
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
