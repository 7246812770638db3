"""BROKEN on purpose: the client aborts the connection instead of closing it.

Bug: SO_LINGER set with a zero timeout turns close() into an abort: the
kernel sends RST instead of FIN, although the reply was read in full.
Caught by: the `close` probe ("... remove the SO_LINGER option ...").

Usage: python3 broken_reset.py HOST PORT
"""

import socket
import struct
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"hello from my client\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        # BUG: linger on, 0 seconds: close() now resets the connection.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    print("reply:", reply.decode(errors="replace").rstrip("\n"))


if __name__ == "__main__":
    main()
