"""For tests/check.rs: an echo server that sends str instead of bytes, so
its first send raises TypeError and the server ends."""
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = listener.accept()
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data.decode())
