"""An echo server in one thread: a reference answer for `netlab check tcp-concurrent`.

Usage: python3 good_select.py PORT [HOST]

The selectors module picks the best of select/poll/epoll for the system
(epoll on Linux). Every socket is non-blocking, and the loop only calls
accept(), recv() or send() on a socket the kernel reported ready, so no
client, however slow or silent, can stall the others.
"""
import selectors
import socket
import sys

selector = selectors.DefaultSelector()
# Bytes received from a client and not yet echoed, per client socket.
pending = {}


def accept(listener):
    conn, peer = listener.accept()
    conn.setblocking(False)
    pending[conn] = b""
    selector.register(conn, selectors.EVENT_READ)


def drop(conn):
    selector.unregister(conn)
    del pending[conn]
    conn.close()  # sends FIN and frees the descriptor


def on_ready(conn, events):
    try:
        if events & selectors.EVENT_READ:
            data = conn.recv(65536)
            if not data:  # b"": the client closed its side
                drop(conn)
                return
            pending[conn] += data
        if pending[conn]:
            # send() on a non-blocking socket writes what fits and returns
            # the count; the rest waits for the next EVENT_WRITE.
            sent = conn.send(pending[conn])
            pending[conn] = pending[conn][sent:]
    except BlockingIOError:
        pass  # not ready after all; wait for the next event
    except OSError as err:  # reset by the client: drop this one only
        print(f"client dropped: {err}")
        drop(conn)
        return
    # Wait for "writable" only while there is something left to send;
    # while there is, stop reading, so a client that sends without
    # reading cannot make us buffer without limit.
    want = selectors.EVENT_WRITE if pending[conn] else selectors.EVENT_READ
    selector.modify(conn, want)


def main():
    port = int(sys.argv[1])
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    listener = socket.create_server((host, port))
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    print(f"select echo server listening on {host}:{port}")
    while True:
        for key, events in selector.select():
            if key.fileobj is listener:
                accept(listener)
            else:
                on_ready(key.fileobj, events)


if __name__ == "__main__":
    main()
