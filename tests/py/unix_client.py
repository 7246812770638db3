#!/usr/bin/env python3
"""A Unix domain stream client, as a student writes one.

Usage: unix_client.py PATH MESSAGE      (PATH starting with @: abstract name)
Connects, sends MESSAGE, reads the echo until it is complete, closes.
Prints this process's pid on the first line and the echo on the second.
"""
import os
import socket
import sys


def main() -> int:
    path, message = sys.argv[1], sys.argv[2].encode()
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(address)
        sock.sendall(message)
        echo = b""
        while len(echo) < len(message):
            chunk = sock.recv(1024)
            if not chunk:
                break
            echo += chunk
    print(os.getpid())
    print(echo.decode("utf-8", "replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
