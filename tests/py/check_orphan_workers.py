"""For tests/check.rs: a pre-forking server whose parent exits as soon as
its two workers run. The workers, re-parented to netlab (the subreaper),
share the listener and serve with a thread per client."""
import os
import socket
import sys
import threading


def serve(conn):
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass


listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
for _ in range(2):
    if os.fork() == 0:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
os._exit(0)
