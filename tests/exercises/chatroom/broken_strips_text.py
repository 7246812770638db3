#!/usr/bin/env python3
"""BROKEN on purpose: the chat text is strip()ped.

The bug: C name text is forwarded as MSG name text.strip(), so spaces at
the ends of the line are lost (a datagram has no newline to remove).
netlab's probe `fan-out` sends a line that ends with a space and must
fail (hint: do not strip() the text); the other probes pass.

Usage: python3 broken_strips_text.py PORT
"""
import re
import socket
import sys

MAX_DATAGRAM = 1024
# 1 to 16 letters, digits, "_" or "-" (netlab also allows letters of any
# script; ASCII keeps this short). "admin" is kept for the server's console.
NAME = re.compile(r"[A-Za-z0-9_-]{1,16}")


def main() -> None:
    port = int(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    print(f"chat server on 127.0.0.1:{port}", flush=True)
    users = {}  # name -> (ip, port) the user logged in from

    def send(text, addr):
        sock.sendto(text.encode(), addr)

    def refuse(reason, addr):
        # Only the sender hears why; the dict is left as it was.
        send(f"ERR {reason}", addr)

    while True:
        # One byte more than the limit: a longer datagram is cut to
        # MAX_DATAGRAM + 1 bytes and so can be told from one that fits.
        data, addr = sock.recvfrom(MAX_DATAGRAM + 1)
        if not data:
            refuse("empty datagram", addr)  # UDP: b"" is a datagram, not an end
            continue
        if len(data) > MAX_DATAGRAM:
            refuse("datagram too long", addr)
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            refuse("not UTF-8", addr)
            continue
        kind, _, rest = text.partition(" ")
        if kind == "L":
            name = rest
            if not NAME.fullmatch(name) or name.lower() == "admin":
                refuse("name invalid", addr)
            elif users.get(name) == addr:
                send("OK", addr)  # our first OK was lost; nothing changes
            elif name in users:
                refuse("name taken", addr)
            elif addr in users.values():
                refuse("already logged in", addr)
            else:
                for other in users.values():
                    send(f"JOIN {name}", other)
                users[name] = addr
                send("OK", addr)
            continue
        if kind not in ("C", "Q", "W"):
            refuse("malformed request", addr)
            continue
        name, _, said = rest.partition(" ")
        if kind == "Q" and name not in users:
            send("EXIT", addr)  # the first EXIT was lost: say it again
            continue
        # Anyone can write any name: a request counts only from the
        # address that name logged in from.
        if name not in users:
            refuse("unknown name", addr)
        elif users[name] != addr:
            refuse("not your name", addr)
        elif kind == "C":
            if not said or not said.isprintable():
                refuse("malformed request", addr)
                continue
            for other, other_addr in users.items():
                if other != name:  # everyone but the sender
                    send(f"MSG {name} {said.strip()}", other_addr)  # BUG
        elif kind == "Q":
            del users[name]
            send("EXIT", addr)
            for other_addr in users.values():
                send(f"LEAVE {name}", other_addr)
        else:  # W
            send(" ".join(["USERS"] + sorted(users)), addr)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
