"""For tests/check.rs: a TCP echo server that first binds a UDP socket on
the same port (a status channel, say) and listens with TCP 0.3 s later."""
import socket
import sys
import time

port = int(sys.argv[1])
status = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
status.bind(("127.0.0.1", port))
time.sleep(0.3)
listener = socket.create_server(("127.0.0.1", port))
while True:
    conn, _ = listener.accept()
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
