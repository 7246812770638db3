"""For tests/check.rs: a tcp-client answer that sends str instead of
bytes: sendall() raises TypeError before anything is sent."""
import socket
import sys

with socket.create_connection((sys.argv[1], int(sys.argv[2]))) as sock:
    sock.sendall("hello\n")
    print(sock.recv(1024))
