"""For tests/check.rs: four worker processes, each with a listening socket
of its own on the same port (SO_REUSEPORT: the kernel spreads new
connections among them), each serving its clients with a thread apiece.
The parent only waits for them."""
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


def worker(port):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


port = int(sys.argv[1])
workers = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        worker(port)
    workers.append(pid)
for pid in workers:
    os.waitpid(pid, 0)
