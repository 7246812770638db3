"""For tests/check.rs: a thread-per-client echo server that does not catch
ConnectionResetError, so the thread of the client that resets dies with a
traceback; the server itself goes on serving."""
import socket
import sys
import threading


def serve(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
