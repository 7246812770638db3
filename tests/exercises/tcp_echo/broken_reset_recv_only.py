"""BROKEN on purpose: catches a reset only around recv(), not around sendall().

The bug: `except ConnectionResetError` guards recv() alone. A client that
resets while the server waits in recv() is handled; one that resets while
the server is blocked in sendall() (the client sent a lot and read
nothing) makes sendall() raise ConnectionResetError or BrokenPipeError,
which nothing catches, and the whole server dies.
Caught by: reset (its second client sends without reading, then resets;
the hint says to catch OSError around the whole conversation).

Usage: python3 broken_reset_recv_only.py PORT
"""
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()
    while True:
        try:
            data = conn.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        conn.sendall(data)  # BUG: a reset here is not caught
    conn.close()
