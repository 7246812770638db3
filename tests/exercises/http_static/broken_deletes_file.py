r"""NOT what the exercise asks for (a warning): DELETE removes the file.
DELETE /style.css gets 204 No Content and the file is gone from the
root. netlab's `bad-request` probe (which sends that DELETE last) must
warn that the server deleted the file (hint: a static server must not
change its files; 405 or 501); every other probe passes.

    netlab check http-static -- python3 broken_deletes_file.py {port} {root}
"""
import os
import socket
import sys
import threading
from urllib.parse import unquote, urlsplit

TYPES = {".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8",
         ".css": "text/css", ".png": "image/png"}
MAX_HEAD = 64 * 1024


def respond(conn, status, headers, body, send_body=True):
    """Send one response. Content-Length counts the body's bytes."""
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    conn.sendall(head.encode("ascii") + b"\r\n" + (body if send_body else b""))


def resolve(root, target):
    """The file a target names, or None if it would leave the root."""
    path = unquote(urlsplit(target).path)           # "%20" -> " ", "%2e" -> "."
    if "\x00" in path:                              # no file name holds a NUL
        return None
    full = os.path.realpath(os.path.join(root, path.lstrip("/")))
    # realpath has removed every "..": what is left must still be under root.
    if os.path.commonpath([root, full]) != root:
        return None
    return full


def answer(conn, root, method, target):
    """Answer one GET or HEAD: HEAD gets the same head, without the body."""
    send_body = method == "GET"
    path = resolve(root, target)
    if path is None:
        return respond(conn, "403 Forbidden", {}, b"forbidden\n", send_body)
    if os.path.isdir(path):
        path = os.path.join(path, "index.html")
    try:
        with open(path, "rb") as f:                  # bytes, never decoded
            body = f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return respond(conn, "404 Not Found", {}, b"not found\n", send_body)
    except PermissionError:
        return respond(conn, "403 Forbidden", {}, b"forbidden\n", send_body)
    kind = TYPES.get(os.path.splitext(path)[1], "application/octet-stream")
    respond(conn, "200 OK", {"Content-Type": kind}, body, send_body)


def serve(conn, root):
    """The thread of one connection: serve it, then close it."""
    try:
        with conn:
            serve_requests(conn, root)
    except OSError:
        pass                                         # the client reset or vanished


def serve_requests(conn, root):
    """Requests one after another, until the client closes or asks to."""
    buffer = b""
    while True:
        # One recv() may hold part of a request or more than one:
        # read until the buffer holds a whole head.
        while b"\r\n\r\n" not in buffer:
            data = conn.recv(4096)
            if not data or len(buffer) > MAX_HEAD:
                return                               # client closed (b"") or abuse
            buffer += data
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")   # latin-1 decodes any byte
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            respond(conn, "400 Bad Request", {"Connection": "close"}, b"bad request\n")
            return
        method, target, version = parts
        if method == "DELETE":                     # BUG: a static server changes nothing
            path = resolve(root, target)
            if path is not None and os.path.isfile(path):
                os.remove(path)
            respond(conn, "204 No Content", {"Connection": "close"}, b"")
            return
        if method not in ("GET", "HEAD"):
            # A body we do not read may follow: answer, then close.
            respond(conn, "405 Method Not Allowed",
                    {"Allow": "GET, HEAD", "Connection": "close"}, b"")
            return
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip().lower()
        answer(conn, root, method, target)
        # HTTP/1.1 keeps the connection unless asked not to; 1.0 closes.
        if fields.get("connection") == "close" or version == "HTTP/1.0":
            return


def main():
    port, root = int(sys.argv[1]), os.path.realpath(sys.argv[2])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, root), daemon=True).start()


if __name__ == "__main__":
    main()
