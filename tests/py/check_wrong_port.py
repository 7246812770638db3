"""For tests/check.rs: a server that ignores the port it is given and
listens on a port of its own choosing (a hard-coded port in a real
student's program; port 0 here, so tests never collide)."""
import socket
import time

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
print("listening on", server.getsockname()[1])
time.sleep(60)
