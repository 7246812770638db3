"""BROKEN on purpose: echoes whole lines only (makefile() and a loop over lines).

The bug: `for line in f` hands over a line only when its newline has
arrived. Text lines come back, so `echo` passes; but bytes after the last
newline are held back until the client closes, and a client that waits
for its echo before closing never gets them.
Caught by: binary and large (the echo stops right after a newline; the
hint says the server echoes only whole lines).

Usage: python3 broken_whole_lines.py PORT
"""
import socket
import sys

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()
    try:
        with conn, conn.makefile("rwb") as f:
            for line in f:  # BUG: waits for a newline
                f.write(line)
                f.flush()
    except OSError:
        pass
