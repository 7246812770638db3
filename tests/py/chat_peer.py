#!/usr/bin/env python3
"""A chatroom peer that speaks the raw protocol over UDP, from a script of
steps given as arguments, for the chatroom tests.

    chat_peer.py HOST PORT STEP...

Steps:
    sock:N          use socket N from now on (a new one, on a new port, the
                    first time; socket 0 is used at the start)
    send:TEXT       send TEXT (UTF-8) as one datagram
    hex:HEX         send these bytes ("" for an empty datagram)
    big:N           send a datagram of N bytes ("C " and N-2 x's)
    flood:N         send N malformed datagrams as fast as possible
    ask:TEXT|REPLY  send TEXT until REPLY comes back (every 300 ms, 15
                    tries), as a client must when datagrams can be lost
    expect:TEXT     wait up to 5 s for a datagram equal to TEXT; other
                    datagrams on the way are skipped and printed
    quiet:MS        fail if a datagram other than JOIN/LEAVE arrives within MS
    print:TEXT      print TEXT on stdout (a marker for the test to wait for)
    wait:PATH       wait up to 10 s for the file PATH to exist

Every datagram received is printed as `got N: TEXT`; the script exits 1 at
the first step that fails.
"""

import os
import socket
import sys
import time


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    server = (host, port)
    socks = {}

    def sock(n):
        if n not in socks:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks[n] = s
        return socks[n]

    current = sock(0)
    current_n = 0

    def receive(timeout):
        current.settimeout(timeout)
        data, sender = current.recvfrom(2048)
        text = data.decode("utf-8", "replace")
        print(f"got {current_n}: {text}", flush=True)
        if sender != server:
            fail(f"datagram from {sender}, not from the server {server}")
        return text

    def fail(why):
        print(f"FAILED: {why}", flush=True)
        sys.exit(1)

    for step in sys.argv[3:]:
        kind, _, arg = step.partition(":")
        if kind == "sock":
            current_n = int(arg)
            current = sock(current_n)
        elif kind == "send":
            current.sendto(arg.encode("utf-8"), server)
        elif kind == "hex":
            current.sendto(bytes.fromhex(arg), server)
        elif kind == "big":
            current.sendto(b"C " + b"x" * (int(arg) - 2), server)
        elif kind == "flood":
            for _ in range(int(arg)):
                current.sendto(b"flood", server)
        elif kind == "ask":
            question, _, answer = arg.partition("|")
            for _ in range(15):
                current.sendto(question.encode("utf-8"), server)
                deadline = time.monotonic() + 0.3
                got = None
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        got = receive(left)
                    except socket.timeout:
                        break
                    if got == answer:
                        break
                if got == answer:
                    break
            else:
                fail(f"no {answer!r} after 15 tries of {question!r}")
        elif kind == "expect":
            deadline = time.monotonic() + 5
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    fail(f"no datagram {arg!r} within 5 s")
                try:
                    if receive(left) == arg:
                        break
                except socket.timeout:
                    fail(f"no datagram {arg!r} within 5 s")
        elif kind == "quiet":
            deadline = time.monotonic() + int(arg) / 1000
            while (left := deadline - time.monotonic()) > 0:
                try:
                    text = receive(left)
                except socket.timeout:
                    break
                if not text.startswith(("JOIN ", "LEAVE ")):
                    fail(f"unexpected datagram {text!r}")
        elif kind == "print":
            print(arg, flush=True)
        elif kind == "wait":
            deadline = time.monotonic() + 10
            while not os.path.exists(arg):
                if time.monotonic() > deadline:
                    fail(f"{arg} did not appear")
                time.sleep(0.02)
        else:
            fail(f"unknown step {step!r}")
    print("done", flush=True)


if __name__ == "__main__":
    main()
