"""A double-forking echo server: a reference answer for `netlab check
tcp-concurrent` without any SIGCHLD handler.

Usage: python3 good_double_fork.py PORT

The classic trick from Unix network programming: for each client the
server forks a child, which forks a grandchild and exits at once. The
server reaps the child straight away (waitpid returns quickly), and the
grandchild, whose parent has gone, is adopted by init (under netlab, by
netlab: it is a child subreaper), which reaps it when it ends. So the
server never has zombies, and never needs a SIGCHLD handler.
"""
import os
import socket
import sys


def serve(conn):
    """Echo everything one client sends, until it closes its side."""
    while data := conn.recv(65536):
        conn.sendall(data)


def main():
    listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
    while True:
        conn, _ = listener.accept()
        child = os.fork()
        if child == 0:
            # The child: fork the grandchild that serves, and leave.
            if os.fork() > 0:
                os._exit(0)
            # The grandchild: it serves this client only.
            listener.close()
            try:
                serve(conn)
            except OSError:
                pass
            os._exit(0)
        conn.close()
        # The child exits at once: this wait is short, and leaves no zombie.
        os.waitpid(child, 0)


if __name__ == "__main__":
    main()
