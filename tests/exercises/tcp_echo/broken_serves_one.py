"""BROKEN on purpose: no loop around accept(), so it serves one client and ends.

The bug: accept() is called once. The first client (the `echo` probe) is
served correctly; when it leaves, the program reaches its end and exits
with status 0, printing nothing, and every later client is refused.
Caught by: binary (the report says the program ended by itself, status 0,
and the hint is to loop back to accept(), not about the bytes sent).

Usage: python3 broken_serves_one.py PORT
"""
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
conn, peer = listener.accept()  # BUG: once, not in a loop
while data := conn.recv(4096):
    conn.sendall(data)
conn.close()
