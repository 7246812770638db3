"""For tests/check.rs: a server that ignores the port it is given and
listens on a port of its own choosing, as a real student's program with a
hard-coded port does. Here the first free port from 20000 up, below the
range the kernel picks from for port 0, so tests never collide and netlab
sees a port chosen by the program, not by the kernel."""
import socket
import time

server = socket.socket()
for port in range(20000, 32000):
    try:
        server.bind(("127.0.0.1", port))
        break
    except OSError:
        continue
server.listen()
print("listening on", server.getsockname()[1])
time.sleep(60)
