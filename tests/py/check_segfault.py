"""For tests/check.rs: an echo server that crashes like a C program with
a bad pointer (SIGSEGV) when its third client connects."""
import os
import signal
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
clients = 0
while True:
    conn, _ = listener.accept()
    clients += 1
    if clients == 3:
        os.kill(os.getpid(), signal.SIGSEGV)
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
