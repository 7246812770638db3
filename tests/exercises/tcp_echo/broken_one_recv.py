"""BROKEN on purpose: answers one recv() per client, then hangs up.

The bug: the server assumes one recv() returns the whole message. A short
line does arrive in one piece, so simple tests pass; 1 MiB arrives in many
pieces, and everything after the first is never echoed.
Caught by: large (a few KiB come back, then the connection ends).

Usage: python3 broken_one_recv.py PORT
"""
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()
    with conn:
        try:
            data = conn.recv(4096)  # BUG: one recv() is not the whole message
            conn.sendall(data)
        except OSError as err:
            print(f"{peer}: {err}")
