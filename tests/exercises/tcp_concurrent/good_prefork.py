"""A pre-forking echo server: a reference answer for `netlab check tcp-concurrent`.

Usage: python3 good_prefork.py PORT [HOST]

The parent opens the listening socket, forks a fixed number of workers,
closes its own copy and only waits. Each worker keeps the listener and
calls accept() on it itself: the kernel hands each new connection to one
of the workers blocked in accept(). netlab's child-listener probe sees
that these children existed before any client and do not grow in number
with clients, so their holding the listener is the design, not a leak;
reaped checks that only these workers are left, and no zombie.
A worker serves one client at a time, so at most WORKERS clients are
served at once; more wait in the accept queue until a worker is free.
"""
import os
import socket
import sys

WORKERS = 8


def serve(conn):
    """Echo everything one client sends, until it closes its side."""
    while True:
        data = conn.recv(65536)
        if not data:  # b"": the client sent FIN
            return
        conn.sendall(data)


def worker(listener):
    """Accept and serve clients, one after another, for ever."""
    while True:
        conn, peer = listener.accept()
        with conn:  # close() when this client is done
            try:
                serve(conn)
            except OSError as err:  # a reset client ends this conversation only
                print(f"{peer}: {err}")


def main():
    port = int(sys.argv[1])
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    listener = socket.create_server((host, port), backlog=64)
    print(f"pre-forking echo server listening on {host}:{port}")
    for _ in range(WORKERS):
        if os.fork() == 0:
            worker(listener)
            os._exit(0)  # never reached: a worker serves until it is stopped
    # The parent accepts nothing: only the workers need the listener.
    listener.close()
    # Wait for the workers (each wait() also reaps one that ended).
    try:
        while True:
            os.wait()
    except ChildProcessError:  # no workers left
        pass


if __name__ == "__main__":
    main()
