"""For tests/check.rs: a parent that listens, forks the child that really
serves, and only waits for it (as a code reloader does). The child leaks
one descriptor per client (shutdown() and a list instead of close()), which
the descriptors of the parent alone would not show."""
import os
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
child = os.fork()
if child:
    os.waitpid(child, 0)
    sys.exit(0)
served = []
while True:
    conn, _ = listener.accept()
    served.append(conn)
    try:
        while data := conn.recv(65536):
            conn.sendall(data)
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
