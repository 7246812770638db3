"""BROKEN on purpose: shutdown() instead of close(), so descriptors leak.

The bug: the server remembers every connection in `served` (to report how
many clients it had) and ends each one with shutdown(). shutdown() sends
FIN, so the client sees a clean close and nothing stays in CLOSE_WAIT;
but only close() gives the descriptor back, and the list keeps every
socket object alive, so Python never closes them either.
Caught by: fd-growth (/proc/PID/fd grows by one per client).

Usage: python3 broken_leak_fds.py PORT
"""
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
served = []
while True:
    conn, peer = listener.accept()
    served.append(conn)
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
        conn.shutdown(socket.SHUT_RDWR)  # BUG: should be conn.close()
    except OSError as err:
        print(f"{peer}: {err}")
    print(f"clients so far: {len(served)}")
