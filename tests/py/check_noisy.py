"""For tests/check.rs: a correct echo server whose output is hard to show:
a line with quotes and backslashes, a very long line, a control
character, invalid UTF-8, and a traceback from a worker thread that
crashed (the server itself goes on)."""
import os
import socket
import sys
import threading

print("quotes 'single' \"double\" and a back\\slash")
print("x" * 5000)
print("bell \x07 here")
print("abc \u202edef")
sys.stdout.flush()
os.write(1, b"bytes \xff\xfe that are not UTF-8\n")


def crash():
    raise RuntimeError("a worker thread crashed")


threading.Thread(target=crash).start()

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
while True:
    conn, _ = server.accept()
    try:
        while data := conn.recv(65536):
            conn.sendall(data)
    except OSError:
        pass
    conn.close()
