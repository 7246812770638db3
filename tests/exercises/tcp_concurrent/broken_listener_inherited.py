"""BROKEN on purpose: children keep the listening socket.

The bug: the child never closes the listening socket it inherited from
fork(). It still works, but every child holds the port open as long as it
lives: stop the parent while a client is connected and the port stays
taken, and nothing accepts on it.
Caught by: child-listener (the child's /proc/PID/fd shows the listener).

Usage: python3 broken_listener_inherited.py PORT
"""
import os
import signal
import socket
import sys


def reap_children(signum, frame):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


signal.signal(signal.SIGCHLD, reap_children)
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()
    if os.fork() == 0:
        # BUG: listener.close() is missing here
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError as err:
            print(f"{peer}: {err}")
        finally:
            conn.close()
            os._exit(0)
    conn.close()
