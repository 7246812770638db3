#!/usr/bin/env python3
"""Run `netlab chatroom client` in a pseudo-terminal, as a person would:
check that an incoming line goes above a half-typed line and leaves it on
screen, then press Ctrl-C and check that no prompt follows the last lines.

    chat_pty.py NETLAB HOST PORT NAME

A raw UDP peer (name `pia`) logs in; `half typed` is typed without Enter;
pia says one line, which the client must insert above the prompt row (ESC 7,
ESC [1L, the line, ESC 8, ESC [1B) without erasing the row; then ` line`
and Enter must send `half typed line` whole. Then Ctrl-C
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
    # pia's JOIN reaches this client too: let it be printed first, so it
    # does not land between the letters typed next (that is the redraw
    # tested below, with a line that comes after the typing).
    read_until(rb"pia joined")
    # Half a line typed, no Enter yet: the terminal driver holds it and
    # echoes it. An incoming line must go above it and leave it on screen.
    os.write(master, b"half typed")
    read_until(rb"half typed")
    typed_at = len(screen)
    peer.sendto(b"C pia hello terminal", server)
    redraw = read_until(rb"\x1b7\r\x1b\[1Lpia: hello terminal\x1b8\x1b\[1B")
    # Nothing erased the row being typed on, and no prompt was drawn over it.
    kept = b"\x1b[2K" not in screen[typed_at:] and b"> " not in screen[typed_at:]
    os.write(master, b" line\r")
    said = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        data, _ = peer.recvfrom(2048)
        if data.startswith(b"MSG "):
            said = data
            break

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
    # What the client wrote just before it exited may still be in the pty.
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break  # EIO: the terminal's other side is closed
        if not chunk:
            break
        screen += chunk
    code = os.waitstatus_to_exitcode(status)
    # The receiver must be gone too: /proc/PID no longer exists.
    deadline = time.monotonic() + 2
    while os.path.exists(f"/proc/{receiver}") and time.monotonic() < deadline:
        time.sleep(0.02)
    receiver_gone = not os.path.exists(f"/proc/{receiver}")
    peer.sendto(b"Q pia", server)
    # After leaving: no prompt again, and the end line on a row of its own.
    after = screen.split(b"you have left the room")[-1]
    clean_end = (b"you have left the room" in screen
                 and name.encode() + b"> " not in after
                 and re.search(rb"(\n|\x1b\[1B) *(\x1b\[[0-9;]*m)*\* (\x1b\[[0-9;]*m)*end", after) is not None)
    print(f"redraw={redraw is not None} kept={kept} said={said.decode()!r} "
          f"clean_end={clean_end} left={left.decode()!r} exit={code} "
          f"receiver={receiver} receiver_gone={receiver_gone}", flush=True)
    if not clean_end:
        sys.stderr.write(repr(after) + "\n")


if __name__ == "__main__":
    main()
