"""BROKEN on purpose: serves one client at a time.

The bug: a correct tcp-echo server, but iterative. While it is in recv()
for a client that sends nothing, every other client waits in the accept
queue, connected but unanswered.
Caught by: twenty-at-once.

Usage: python3 broken_iterative.py PORT
"""
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()  # BUG: nothing else runs until this client leaves
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError as err:
            print(f"{peer}: {err}")
