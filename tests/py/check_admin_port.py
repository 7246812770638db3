"""For tests/check.rs: an echo server that first opens an admin port of
its own (port 0 here), takes a second to load, and only then listens on
the port it was given."""
import socket
import sys
import time

admin = socket.create_server(("127.0.0.1", 0))
print("admin on", admin.getsockname()[1])
time.sleep(1.0)
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = listener.accept()
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
