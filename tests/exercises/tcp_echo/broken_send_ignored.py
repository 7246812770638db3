"""BROKEN: ignores what send() returns. For `netlab check tcp-echo` (and tcp-concurrent).

Usage: python3 broken_send_ignored.py PORT [HOST]

A select-style echo server like good_select.py, but it echoes each chunk
with one send() and never looks at the count send() returns. A
non-blocking send() writes only what fits in the socket's send buffer;
the rest is dropped here. Short messages fit, so `echo`, `binary` and
the other small probes pass. The `large` probe reads its echo slowly
(a small receive window, and a pause before it reads), the send buffer
fills, and bytes go missing: `large` must fail, naming send() and sendall().
"""
import selectors
import socket
import sys

selector = selectors.DefaultSelector()


def serve(conn):
    try:
        data = conn.recv(65536)
    except BlockingIOError:
        return
    except OSError:  # reset by the client
        data = b""
    if not data:
        selector.unregister(conn)
        conn.close()
        return
    try:
        conn.send(data)  # BUG: the count it returns is ignored
    except BlockingIOError:
        pass  # BUG: the whole chunk is dropped
    except OSError:
        pass  # the next recv() sees the reset


def main():
    port = int(sys.argv[1])
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    listener = socket.create_server((host, port))
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ)
            else:
                serve(key.fileobj)


if __name__ == "__main__":
    main()
