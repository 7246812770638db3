"""BROKEN on purpose: it catches ConnectionResetError, and only that.

The bug: the try covers the whole conversation, but names one exception.
A client that closes its side and then resets while the server is still
sending makes sendall() fail with EPIPE, which Python raises as
BrokenPipeError, and the server dies. Both mean "the client is gone":
catch OSError, which covers them.
Caught by: reset (its second client), with a hint that names EPIPE.

Usage: python3 broken_catches_reset_only.py PORT
"""
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = listener.accept()
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except ConnectionResetError:  # BUG: BrokenPipeError is not caught
            print("a client reset its connection")
