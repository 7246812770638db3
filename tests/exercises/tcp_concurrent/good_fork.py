"""A forking echo server: a reference answer for `netlab check tcp-concurrent`.

Usage: python3 good_fork.py PORT [HOST]

One process per client. The parent only accepts; each child serves one
client and exits. Three things keep it clean (netlab checks each):
  - the child closes the listening socket it inherited from fork();
  - the parent closes its copy of the client's socket, or the client
    never sees FIN when the child closes (CLOSE_WAIT, leaked descriptors);
  - the parent reaps every child that exits, or each becomes a zombie.
"""
import os
import signal
import socket
import sys


def serve(conn):
    """Echo everything one client sends, until it closes its side."""
    while True:
        data = conn.recv(65536)
        if not data:  # b"": the client sent FIN
            return
        conn.sendall(data)


def reap_children(signum, frame):
    """SIGCHLD: one or more children have exited. Reap them all.

    Signals of one kind merge while one is pending, so a single SIGCHLD may
    stand for several exits: loop until waitpid() finds no more.
    """
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # no children at all
            return
        if pid == 0:  # children remain, but none has exited
            return


def main():
    port = int(sys.argv[1])
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    signal.signal(signal.SIGCHLD, reap_children)
    listener = socket.create_server((host, port))
    print(f"forking echo server listening on {host}:{port}")
    while True:
        # A SIGCHLD may interrupt accept(); Python retries it (PEP 475).
        conn, peer = listener.accept()
        pid = os.fork()
        if pid == 0:
            # The child: it serves this client only.
            listener.close()
            try:
                serve(conn)
            except OSError as err:  # a reset client ends this child only
                print(f"{peer}: {err}")
            finally:
                conn.close()
                # _exit(): leave now, without running the parent's
                # clean-up or returning into its accept() loop.
                os._exit(0)
        # The parent: the child has its own copy of the connection.
        conn.close()


if __name__ == "__main__":
    main()
