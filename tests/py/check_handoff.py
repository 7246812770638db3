"""For tests/check.rs: the started process listens, forks a child that
serves (an echo server), and exits 0.15 s later (while the probes run), as a daemon's launcher
does: the child, which holds the listening socket, is the server from then
on."""
import os
import socket
import sys
import time

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
if os.fork() == 0:
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass
time.sleep(0.15)
os._exit(0)
