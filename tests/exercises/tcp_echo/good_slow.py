"""CORRECT but slow on purpose: echoes 64 bytes at a time, with a pause.

Nothing is lost, duplicated or reordered, but the echo crawls (at most
32 KB/s, like a server that calls recv(1) once per byte on a slow
machine). The `large` probe must tell this from lost bytes: bytes are
still arriving, in order, when its time runs out, so it gives a WARN
that says the echo is slow and that the rest was not checked, and
suggests --patience; never a lost-bytes hint.
Every other probe passes.

Usage: python3 good_slow.py PORT
"""
import socket
import sys
import time

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()
    with conn:
        try:
            while data := conn.recv(64):
                conn.sendall(data)
                time.sleep(0.002)  # slow, not wrong
        except OSError:
            pass
