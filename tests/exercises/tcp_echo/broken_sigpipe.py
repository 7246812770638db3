"""BROKEN on purpose: lets SIGPIPE kill it, as a C server does by default.

The bug: `signal(SIGPIPE, SIG_DFL)` restores the default action of
SIGPIPE, which Python ignores on its own (it raises BrokenPipeError
instead). Then a write to a connection the client has reset after
closing its side fails with EPIPE, and the kernel kills the process with
SIGPIPE before any `except OSError` can run: the same as a C server that
never calls signal(SIGPIPE, SIG_IGN) nor sends with MSG_NOSIGNAL.
Caught by: reset (its second client makes the server write after the
reset; the hint names SIGPIPE, SIG_IGN and MSG_NOSIGNAL).

Usage: python3 broken_sigpipe.py PORT
"""
import signal
import socket
import sys

signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # BUG: a write after a reset kills us
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
