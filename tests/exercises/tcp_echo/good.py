"""A TCP echo server: the reference answer for `netlab check tcp-echo`.

Usage: python3 good.py PORT [HOST]

It serves one client at a time (an iterative server): accept a client,
send back every byte it sends until it closes, close, accept the next.
For many clients at once, see tests/exercises/tcp_concurrent/.
"""
import socket
import sys


def serve(conn):
    """Echo everything one client sends, until it closes its side."""
    while True:
        # recv() returns whatever has arrived, 1 to 65536 bytes: not
        # necessarily a whole message, and never more than we ask for.
        data = conn.recv(65536)
        if not data:
            # b"" means the client sent FIN: it will send nothing more.
            return
        # send() may write only part of a large buffer; sendall() loops
        # until every byte is in the kernel's send buffer.
        conn.sendall(data)


def main():
    port = int(sys.argv[1])
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    # create_server() = socket() + SO_REUSEADDR + bind() + listen().
    listener = socket.create_server((host, port))
    print(f"echo server listening on {host}:{port}")
    while True:
        conn, peer = listener.accept()
        # `with` closes the socket however the conversation ends: our FIN
        # goes out and the kernel does not keep the connection in CLOSE_WAIT.
        with conn:
            try:
                serve(conn)
            except OSError as err:
                # A client that resets (RST) makes recv() raise
                # ConnectionResetError, or sendall() BrokenPipeError.
                # That is one client's problem, not the server's.
                print(f"{peer}: {err}")


if __name__ == "__main__":
    main()
