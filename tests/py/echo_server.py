#!/usr/bin/env python3
"""An echo server for many clients at once, written the way the course
writes one: one thread, the selectors module (epoll underneath).

Usage: echo_server.py [--corrupt]
Listens on 127.0.0.1, on a port the kernel picks, prints
"listening on 127.0.0.1:PORT" and serves until SIGTERM or SIGINT.
With --corrupt, every 50th echo has its first byte changed: a broken
server that a load generator must catch.
"""
import selectors
import signal
import socket
import sys


def main() -> int:
    corrupt = "--corrupt" in sys.argv[1:]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    selector = selectors.DefaultSelector()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    host, port = listener.getsockname()
    print(f"listening on {host}:{port}", flush=True)
    echoes = 0
    try:
        while True:
            for key, _ in selector.select():
                sock = key.fileobj
                if sock is listener:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    selector.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionError:
                    data = b""
                if not data:
                    selector.unregister(sock)
                    sock.close()
                    continue
                echoes += 1
                if corrupt and echoes % 50 == 0:
                    data = bytes([data[0] ^ 0x20]) + data[1:]
                # Small test messages: a blocking sendall keeps this short.
                sock.setblocking(True)
                try:
                    sock.sendall(data)
                except ConnectionError:
                    pass
                sock.setblocking(False)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
