"""BROKEN on purpose: a double-forking server whose grandchildren keep the
listening socket.

The bug: the grandchild that serves a client never closes the listener it
inherited (compare good_double_fork.py). It is adopted by netlab (its
parent exits at once), so it is no longer below the server, but it still
holds the port open.
Caught by: child-listener (netlab counts the processes it adopted from
the server as the server's).

Usage: python3 broken_double_fork_listener.py PORT
"""
import os
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = listener.accept()
    child = os.fork()
    if child == 0:
        if os.fork() > 0:
            os._exit(0)
        # BUG: listener.close() is missing here.
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
        os._exit(0)
    conn.close()
    os.waitpid(child, 0)
