"""BROKEN on purpose: the parent keeps its copy of each client's socket.

The bug: after fork() both processes hold the connection, and the parent
never closes its copy. The child closes its own when the client leaves,
but the kernel sends FIN only when the last copy is closed, so the
connection waits in CLOSE_WAIT (here until the next accept() replaces
`conn` and Python closes the old socket object; in C, forever).
Caught by: close-wait (no FIN; /proc/net/tcp shows CLOSE_WAIT).

Usage: python3 broken_parent_keeps_conn.py PORT
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
        listener.close()
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
    # BUG: conn.close() is missing here, in the parent
