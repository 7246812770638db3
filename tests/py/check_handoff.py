"""For tests/check.rs: the started process listens, forks a child that
serves (an echo server), and exits as soon as the child has accepted its
first client, as a daemon's launcher might: the child, which holds the
listening socket, is the server from then on."""
import os
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
first_client, tell_parent = os.pipe()
if os.fork() == 0:
    os.close(first_client)
    while True:
        conn, _ = listener.accept()
        if tell_parent is not None:
            os.close(tell_parent)  # the parent's read() returns b""
            tell_parent = None
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass
os.close(tell_parent)
os.read(first_client, 1)
os._exit(0)
