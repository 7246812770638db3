"""BROKEN on purpose: a greeting before the first answer.

Bug: serve() sends b"HELLO\n" as soon as a client connects, as a chat
server might. The protocol has only answers: the client reads "HELL" as
the first answer's length (1,212,501,068 bytes).
Caught by: the `one-message` probe, which must say that something came
before the first answer and show those 4 bytes as text, "HELL" (hint:
send nothing but answers).

Usage: python3 broken_greeting.py PORT
"""

import socket
import struct
import sys

MAX_LENGTH = 1024 * 1024  # 1 MiB: never trust a length from the network


def recv_exactly(conn, n):
    """Read exactly n bytes; fewer only if the client closed first.

    One recv() returns whatever has arrived, from 1 byte up to what was
    asked, so reading a fixed number of bytes is always a loop."""
    data = bytearray()
    while len(data) < n:
        chunk = conn.recv(min(n - len(data), 65536))
        if not chunk:  # b"": the client closed its side (FIN)
            break
        data += chunk
    return bytes(data)


def serve(conn):
    """Answer one client's messages until it closes."""
    conn.sendall(b"HELLO\n")  # BUG: the protocol has no greeting
    while True:
        header = recv_exactly(conn, 4)  # the length may arrive in pieces too
        if len(header) < 4:
            return  # the client closed between messages (or inside a length)
        (length,) = struct.unpack("!I", header)
        if length > MAX_LENGTH:
            print(f"refused a message of {length} bytes")
            return  # close this connection without reading 4 GB
        message = recv_exactly(conn, length)  # length 0: b"", a valid message
        if len(message) < length:
            return  # the client closed inside a message
        answer = message[::-1]
        # sendall() loops until the kernel has taken every byte.
        conn.sendall(struct.pack("!I", len(answer)) + answer)


def main():
    port = int(sys.argv[1])
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:  # one client at a time: enough for this protocol's tests
            conn, addr = listener.accept()
            with conn:  # close() whatever happens: no CLOSE_WAIT left behind
                try:
                    serve(conn)
                except OSError as err:  # e.g. the client reset the connection
                    print(f"{addr}: {err}")


if __name__ == "__main__":
    main()
