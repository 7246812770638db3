"""For tests/check.rs: a server that ignores SIGTERM, and forks a child
that leaves the process group (setsid) and lingers. netlab must still
stop both: SIGKILL after the grace period, the child by its pid."""
import os
import signal
import socket
import sys
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
child = os.fork()
if child == 0:
    server.close()
    os.setsid()
    time.sleep(60)
    os._exit(0)
print("lingering child", child)
while True:
    conn, _ = server.accept()
    try:
        while data := conn.recv(65536):
            conn.sendall(data)
    except OSError:
        pass  # a client that resets: serve the next one
    conn.close()
