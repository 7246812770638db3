"""BROKEN on purpose: the child forgets os._exit(0).

The bug: after serving its client, the child returns from the handler
into the parent's loop. It closed the listener it inherited, so its next
accept() raises OSError (Bad file descriptor) and the child dies with a
traceback. Every client is still served and every child is reaped, so
the echo probes pass; what gives it away is a traceback per client.
Caught by: reaped (a warning: the children ended on an exception).

Usage: python3 broken_child_no_exit.py PORT
"""
import os
import signal
import socket
import sys


def reap(signum, frame):
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


signal.signal(signal.SIGCHLD, reap)
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = listener.accept()
    if os.fork() == 0:
        listener.close()
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
        conn.close()
        # BUG: os._exit(0) is missing; the child runs on into the loop.
        continue
    conn.close()
