"""BROKEN on purpose: a plain byte echo, not a framing server.

Bug: it sends back every byte as it comes, without reading the frames, so
each answer is the message itself instead of its bytes reversed.
Caught by: the `one-message` probe ("Answer each message with its bytes
reversed ..."); every later probe is skipped.

Usage: python3 broken_echo.py PORT
"""

import socket
import sys


def main():
    port = int(sys.argv[1])
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, addr = listener.accept()
            with conn:
                try:
                    while data := conn.recv(65536):  # BUG: no frames read
                        conn.sendall(data)
                except OSError as err:
                    print(f"{addr}: {err}")


if __name__ == "__main__":
    main()
