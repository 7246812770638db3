"""For tests/check.rs: an echo server that first opens an admin port the
kernel chooses (port 0), takes 2.5 s to load, and only then listens on the
port it was given: longer than the 2 s after which another port counts as
the wrong one, but that port was not chosen by the program."""
import socket
import sys
import time

admin = socket.create_server(("127.0.0.1", 0))
print("admin on", admin.getsockname()[1])
time.sleep(2.5)
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = listener.accept()
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
