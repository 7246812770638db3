"""A length-prefixed server that reads the length in the wrong byte order.

Bug: it unpacks and packs the length with "<I" (little-endian) where the
protocol says network byte order ("!I"), so the 15-byte message of
`one-message` reads as 251,658,240 bytes and is refused. `one-message`
must fail with the byte-order hint; the other probes are then skipped.

Usage: python3 broken_byte_order.py PORT
"""

import socket, struct, sys, threading
MAX = 1 << 20
def serve(c):
    buf = bytearray()
    with c:
        try:
            while True:
                while len(buf) >= 4:
                    (n,) = struct.unpack_from("<I", buf)
                    if n > MAX: return
                    if len(buf) < 4 + n: break
                    msg = bytes(buf[4:4+n]); del buf[:4+n]
                    c.sendall(struct.pack("<I", n) + msg[::-1])
                d = c.recv(65536)
                if not d: return
                buf += d
        except OSError: pass
L = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    c, _ = L.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
