#!/usr/bin/env python3
"""Run `netlab chatroom client` in a pseudo-terminal, as a person would:
check that an incoming line redraws the prompt, then press Ctrl-C.

    chat_pty.py NETLAB HOST PORT NAME

A raw UDP peer (name `pia`) logs in and says one line; the client's
terminal must show it as `\\r ESC[2K pia: ... \\r\\n NAME> `. Then Ctrl-C
(byte 0x03, which the terminal turns into SIGINT for the foreground process
group) must make the client send Q: pia must see `LEAVE NAME`. Prints one
line of results, `key=value` pairs, for the Rust test to check.
"""

import os
import pty
import re
import select
import signal
import socket
import sys
import time


def child_of(parent):
    """The pid of the one child of `parent`, read from /proc (the receiver
    may still be starting: wait for it)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                return int(entry)
        time.sleep(0.02)
    raise SystemExit(f"pid {parent} has no child")


def main():
    netlab, host, port, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    server = (host, port)
    pid, master = pty.fork()
    if pid == 0:
        os.environ.pop("NO_COLOR", None)
        os.execv(netlab, [netlab, "--quiet", "chatroom", "client",
                          "--name", name, "--server", f"{host}:{port}", "--timeout", "500"])
    try:
        run(pid, master, server, name)
    finally:
        # Whatever happened, nothing we started is left: stop the client by
        # its pid if it still runs (its receiver follows: PR_SET_PDEATHSIG).
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def run(pid, master, server, name):
    screen = b""

    def read_until(pattern, limit=5.0):
        nonlocal screen
        deadline = time.monotonic() + limit
        while not re.search(pattern, screen):
            left = deadline - time.monotonic()
            if left <= 0:
                sys.stderr.write(screen.decode("utf-8", "replace"))
                raise SystemExit(f"timed out waiting for {pattern!r}")
            ready, _, _ = select.select([master], [], [], left)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                screen += chunk
        return re.search(pattern, screen)

    read_until(rb"you are in the room")
    read_until(re.escape(name.encode()) + rb"> ")
    receiver = child_of(pid)

    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    peer.sendto(b"L pia", server)
    assert peer.recvfrom(2048)[0] == b"OK"
    peer.sendto(b"C pia hello terminal", server)
    redraw = read_until(rb"\r\x1b\[2Kpia: hello terminal\r\n" + re.escape(name.encode()) + rb"> ")

    os.write(master, b"\x03")  # Ctrl-C
    left = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        data, _ = peer.recvfrom(2048)
        if data == b"LEAVE " + name.encode():
            left = data
            break
    # Drain the terminal so the client never blocks on a full pty, until
    # it has exited and been reaped.
    deadline = time.monotonic() + 5
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            break
        if time.monotonic() > deadline:
            raise SystemExit("the client did not exit within 5 s of Ctrl-C")
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                screen += os.read(master, 4096)
            except OSError:
                pass  # EIO: the terminal's other side is closed
    code = os.waitstatus_to_exitcode(status)
    # The receiver must be gone too: /proc/PID no longer exists.
    deadline = time.monotonic() + 2
    while os.path.exists(f"/proc/{receiver}") and time.monotonic() < deadline:
        time.sleep(0.02)
    receiver_gone = not os.path.exists(f"/proc/{receiver}")
    peer.sendto(b"Q pia", server)
    print(f"redraw={redraw is not None} left={left.decode()!r} exit={code} "
          f"receiver={receiver} receiver_gone={receiver_gone}", flush=True)


if __name__ == "__main__":
    main()
