"""For tests/check.rs: the indentation slip of putting close() inside the
recv() loop: after the first echo the next recv() meets a closed socket
and raises OSError (Bad file descriptor), which ends the server."""
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = listener.accept()
    while True:
        data = conn.recv(65536)
        if not data:
            break
        conn.sendall(data)
        conn.close()
