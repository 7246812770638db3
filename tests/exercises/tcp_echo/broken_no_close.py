"""BROKEN on purpose: never closes a client's socket.

The bug: when recv() returns b"" the loop ends, but conn.close() is never
called. The client's FIN has been acknowledged by the kernel, so the
connection sits in CLOSE_WAIT until Python happens to close the socket
object (here: only when the next accept() replaces `conn`).
Caught by: close-wait (netlab sees no FIN, and /proc/net/tcp shows CLOSE_WAIT).

Usage: python3 broken_no_close.py PORT
"""
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break  # BUG: conn.close() is missing here
            conn.sendall(data)
    except OSError as err:
        print(f"{peer}: {err}")
