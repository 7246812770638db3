"""An echo server with a thread per client: a reference answer for
`netlab check tcp-concurrent`.

Usage: python3 good_threads.py PORT [HOST]

Each client gets a thread that blocks in recv() on its own socket, so a
silent client blocks only its own thread. Threads share the process's
descriptors: no copies to close, no children to reap.
"""
import socket
import sys
import threading


def serve(conn, peer):
    """Echo everything one client sends, until it closes; then close."""
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)
        except OSError as err:
            print(f"{peer}: {err}")


def main():
    port = int(sys.argv[1])
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    listener = socket.create_server((host, port))
    print(f"threaded echo server listening on {host}:{port}")
    while True:
        conn, peer = listener.accept()
        # daemon: the threads do not keep the program alive once the main
        # thread ends (Ctrl-C).
        threading.Thread(target=serve, args=(conn, peer), daemon=True).start()


if __name__ == "__main__":
    main()
