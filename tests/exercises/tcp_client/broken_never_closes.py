"""BROKEN on purpose: the client reads the reply and then never ends.

Bug: after reading the reply it waits forever (here: a sleep loop standing
for "wait for more work") without closing the socket, so the connection
stays open until the checker gives up.
Caught by: the `close` probe ("Close the socket once the reply is read ...").

Usage: python3 broken_never_closes.py HOST PORT
"""

import socket
import sys
import time


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(b"hello from my client\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    print("reply:", reply.decode(errors="replace").rstrip("\n"))
    # BUG: no sock.close(), and the program never ends.
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
