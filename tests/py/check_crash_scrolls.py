"""For tests/check.rs: an echo server whose worker thread crashes at start
(a traceback), then prints a line for every client, so the traceback
scrolls out of the last 30 lines of output long before it is stopped."""
import socket
import sys
import threading


def crash():
    raise RuntimeError("a worker thread crashed")


threading.Thread(target=crash).start()
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()
    print("client from", peer)
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
