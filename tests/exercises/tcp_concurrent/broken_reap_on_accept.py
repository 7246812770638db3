"""BROKEN on purpose: children are reaped only when the next client comes.

The bug: the parent reaps finished children in a loop, but only just
before it calls accept(). While no client connects, the parent sleeps in
accept() and every child that has exited stays a zombie until the next
client arrives.
Caught by: reaped (zombies under the server once every client has left;
they go when one more client comes, so the hint names that).

Usage: python3 broken_reap_on_accept.py PORT
"""
import os
import socket
import sys


def serve(conn):
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


def main():
    port = int(sys.argv[1])
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        # BUG: the only place that reaps; nothing runs while accept() waits.
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:  # no children at all
            pass
        conn, peer = listener.accept()
        if os.fork() == 0:
            listener.close()
            try:
                serve(conn)
            except OSError:
                pass
            finally:
                conn.close()
                os._exit(0)
        conn.close()


if __name__ == "__main__":
    main()
