#!/usr/bin/env python3
"""One of many clients of a multiplexing echo server.

Usage: mux_client.py HOST PORT NAME COUNT
Connects, then COUNT times sends "NAME i\n" and reads until exactly that line
came back: any byte of another client's echo would show up here. Prints
"NAME ok COUNT" on success, exits 1 with the first difference otherwise.
"""
import socket
import sys


def main() -> int:
    host, port, name, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    with socket.create_connection((host, port), timeout=10) as sock:
        for i in range(count):
            line = f"{name} {i}\n".encode()
            sock.sendall(line)
            received = b""
            while len(received) < len(line):
                chunk = sock.recv(len(line) - len(received))
                if not chunk:
                    print(f"{name}: the server closed after {i} echoes", file=sys.stderr)
                    return 1
                received += chunk
            if received != line:
                print(f"{name}: sent {line!r}, got back {received!r}", file=sys.stderr)
                return 1
    print(f"{name} ok {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
