"""For tests/check.rs: a forking echo server whose children leave the
process group (setsid) and linger after serving, as a careless daemon
would. Only netlab's guard can find them if netlab is killed."""
import os
import socket
import sys
import time

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = listener.accept()
    if os.fork() == 0:
        listener.close()
        os.setsid()
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
        conn.close()
        time.sleep(300)
        os._exit(0)
    conn.close()
