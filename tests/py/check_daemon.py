"""For tests/check.rs: a server that daemonizes the classic way (fork,
setsid, fork again) and serves echo from the grandchild, while the
command netlab started exits 0 at once. netlab must find the daemon by
the listening socket, judge it, and stop it."""
import os, socket, sys
if os.fork() > 0:
    os._exit(0)
os.setsid()
if os.fork() > 0:
    os._exit(0)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
while True:
    c, a = s.accept()
    try:
        while d := c.recv(65536):
            c.sendall(d)
    except OSError:
        pass
    c.close()
