"""BROKEN on purpose: strip()s each chunk and adds a newline.

The bug: `conn.sendall(data.strip() + b"\\n")` treats the bytes as a text
line. A line that already ends in "\\n" comes back unchanged, so `echo`
passes; the 512 bytes of `binary` come back whole, followed by one byte
netlab never sent (the added newline).
Caught by: binary (it reads on after the 512 bytes and finds the extra
byte) and large (chunks lose their whitespace and gain newlines).

Usage: python3 broken_adds_newline.py PORT
"""
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()
    try:
        while data := conn.recv(4096):
            conn.sendall(data.strip() + b"\n")  # BUG: changes the bytes
    except OSError:
        pass
    conn.close()
