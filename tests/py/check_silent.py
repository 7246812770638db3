"""For tests/check.rs: a server that accepts clients and never answers."""
import socket
import sys
import time

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
print("pid", __import__("os").getpid())
clients = []
while True:
    conn, _ = server.accept()
    clients.append(conn)
