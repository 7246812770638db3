#!/usr/bin/env python3
"""Several clients at once, written the way the course's students write one.

Usage: concurrent_clients.py HOST PORT COUNT
Opens COUNT connections, then sends a message on each and reads its echo
while every connection is still open. A server that serves one client at a
time cannot answer the second before the first has left, so this only
succeeds against a concurrent server. Prints "COUNT echoed" and exits 0.
"""
import socket
import sys


def main() -> int:
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    clients = [socket.create_connection((host, port), timeout=5) for _ in range(count)]
    for number, sock in enumerate(clients):
        message = f"client {number}\n".encode()
        sock.sendall(message)
        received = b""
        while len(received) < len(message):
            chunk = sock.recv(1024)
            if not chunk:
                break
            received += chunk
        if received != message:
            print(f"client {number} got {received!r}", file=sys.stderr)
            return 1
    for sock in clients:
        sock.close()
    print(f"{count} echoed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
