"""BROKEN on purpose: every answer is sent twice.

Bug: serve() frames its input correctly, but sends each framed answer
two times (a sendall() left over from debugging). The client reads the
copy as the next answer.
Caught by: the `one-message` probe, which reads on after the answer and
must name the bytes after it as a second copy of the answer (hint: send
each answer once).

Usage: python3 broken_answer_twice.py PORT
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
        conn.sendall(struct.pack("!I", len(answer)) + answer)  # BUG: again


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
