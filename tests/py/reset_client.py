#!/usr/bin/env python3
"""Connect, send one message, read the echo, then reset the connection.

Usage: reset_client.py HOST PORT
SO_LINGER with a zero timeout makes close() send RST instead of FIN, the way
a crashed or killed client looks to the server.
"""
import socket
import struct
import sys


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(b"bye\n")
    sock.recv(1024)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    print("reset sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
