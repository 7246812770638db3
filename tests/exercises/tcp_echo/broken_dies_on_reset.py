"""BROKEN on purpose: one client's reset kills the whole server.

The bug: no try/except around the conversation. When a client resets
(RST), recv() raises ConnectionResetError (or sendall() BrokenPipeError),
the exception ends the program, and every later client is refused.
Caught by: reset (the program exits with a traceback).

Usage: python3 broken_dies_on_reset.py PORT
"""
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()
    with conn:
        while True:  # BUG: ConnectionResetError is not caught
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
