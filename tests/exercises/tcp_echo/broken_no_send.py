"""BROKEN on purpose: receives, but never sends anything back.

The bug: the server accepts each client and prints what it receives, but
the line that should echo it (conn.sendall(data)) is missing.
Caught by: echo, which gets nothing back. /proc/net/tcp shows the
connection was accept()ed (the server's end has a socket inode), so the
report says the program accepted the client and did not answer, and the
hint names sendall(), not accept().

Usage: python3 broken_no_send.py PORT
"""
import socket
import sys


def main():
    port = int(sys.argv[1])
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        conn, peer = listener.accept()
        with conn:
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    print(f"{peer} sent {data!r}")  # BUG: no conn.sendall(data)
            except OSError as err:
                print(f"{peer}: {err}")


if __name__ == "__main__":
    main()
