"""BROKEN on purpose: never reaps its children.

The bug: no SIGCHLD handler and no waitpid(). Each child exits when its
client leaves, but the kernel keeps its exit status (a zombie, state Z in
/proc/PID/stat) until the parent waits for it; they pile up, one per client.
Caught by: reaped.

Usage: python3 broken_no_reap.py PORT
"""
import os
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:  # BUG: no signal.signal(signal.SIGCHLD, ...) reaping with waitpid()
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
    conn.close()
