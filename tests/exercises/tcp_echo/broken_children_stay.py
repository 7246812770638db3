"""BROKEN on purpose: forks a child per client, and the child never exits.

The bug: the child serves its client, closes the socket and then sleeps
instead of ending with os._exit(0). Every client leaves one more process
behind, each with its own descriptors (0, 1, 2 at least).
Caught by: fd-growth (the descriptors grow, and the report says they are
held by more processes, children that did not exit, not by sockets left
open; the hint names os._exit(0), not close()).

Usage: python3 broken_children_stay.py PORT
"""
import os
import signal
import socket
import sys
import time

signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # no zombies, at least
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()
    if os.fork() == 0:
        listener.close()
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
        conn.close()
        time.sleep(300)  # BUG: should be os._exit(0)
    conn.close()
