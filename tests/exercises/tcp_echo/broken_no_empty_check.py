"""BROKEN on purpose: never checks for b"", so it spins on the first client.

The bug: `while True: conn.sendall(conn.recv(4096))` has no `if not data:
break`. When the first client closes, recv() returns b"" at once, for
ever: the server loops on that dead connection and never calls accept()
again. Every later client waits in the accept queue.
Caught by: every probe after echo; each one that got nothing back reads
/proc/net/tcp and finds the connection never accept()ed (inode 0), so
its hint is about accept(), not about sending.

Usage: python3 broken_no_empty_check.py PORT
"""
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()
    try:
        while True:  # BUG: no `if not data: break`
            data = conn.recv(4096)
            conn.sendall(data)
    except OSError:
        pass
    conn.close()
