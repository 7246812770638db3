#!/usr/bin/env python3
"""The http-server part of `make bench`: netlab against nginx and Python's
http.server with wrk, then netlab's memory with 1,000 keep-alive
connections; the figures go to a Markdown file and to stdout.

Usage: bench/http.py NETLAB OUT.md

1. The same 1 KiB file, from the same temporary directory, served by
   (a) `netlab --json --quiet http-server --root DIR` (the epoll model),
   (b) nginx with one worker and its own configuration (access log off,
       keep-alive on), and
   (c) `python3 -m http.server`, for scale.
   Each is loaded with `wrk -t2 -c50 -d5s --latency`, in alternating rounds;
   the verdict uses the median of the rounds. Target: netlab's requests/s at
   least 0.8 times nginx's, with no socket errors and no non-2xx responses.
   Then each of netlab's models (`--model epoll|thread|iterative`) once
   under the same load, while a 51st client measures how long it waits.
2. A fresh netlab: 1,000 connections, one request each, answered and kept
   open; then VmRSS from /proc/PID/status. Target: under 32 MiB.

Every server runs on 127.0.0.1, on a port this script picks (nginx, Python)
or the kernel picks (netlab, `--port 0`), and is stopped by its pid, also
when something fails. Python 3 standard library only; nginx and wrk come
from Debian (`apt-get install nginx wrk`).
"""
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROUNDS = 3                  # wrk runs per server, alternating servers
WRK_ARGS = ["-t2", "-c50", "-d5s", "--latency"]
FILE_SIZE = 1024
RATIO_TARGET = 0.8
CONNS = 1000                # keep-alive connections for the memory figure
PROBE_TIMEOUT = 2.5         # how long the probe client waits for an answer
RSS_TARGET_KIB = 32 * 1024
NGINX_CONF = """\
# nginx for bench/http.py: one worker, loopback only, no access log.
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    sendfile on;
    keepalive_timeout 65;
    # nginx closes a keep-alive connection after 1,000 requests by default;
    # netlab does not, so neither pays for reconnecting.
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def display(argv):
    """A command as a student would type it: `netlab ...` for our binary."""
    return " ".join("netlab" if word.endswith("/netlab") else word for word in argv)


def free_port():
    """A loopback port that is free now (the kernel's pick, released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port, proc, name):
    """Wait until something accepts connections on the port."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode} before it listened")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{name} did not listen on 127.0.0.1:{port} within 10 s")


class Server:
    """A server process started here and stopped by its pid."""

    def __init__(self, name, argv, port=None):
        self.name = name
        self.argv = argv
        if port is None:
            # netlab: --json prints the listening event (even with --quiet),
            # which says which port the kernel gave it.
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            self.port = None
            for line in self.proc.stdout:
                event = json.loads(line)
                if event.get("event") == "info" and event.get("key") == "listening":
                    self.port = event["value"]["port"]
                    break
            if self.port is None:
                self.stop()
                raise SystemExit(f"{display(argv)} exited before it listened")
            # Keep reading, so that a full pipe never blocks the server.
            threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        else:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.port = port
            try:
                wait_for_port(port, self.proc, name)
            except BaseException:
                self.stop()
                raise

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def to_ms(text):
    """wrk's `590.01us`, `1.23ms`, `2.00s` in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        return None
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(output):
    """The figures of one wrk run."""
    figures = {"rps": None, "avg_ms": None, "p50_ms": None, "p99_ms": None,
               "requests": None, "socket_errors": 0, "non_2xx": 0}
    for line in output.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            figures["rps"] = float(words[1])
        elif words[:1] == ["Latency"] and len(words) >= 2 and words[1] != "Distribution":
            figures["avg_ms"] = to_ms(words[1])
        elif words[:1] == ["50%"]:
            figures["p50_ms"] = to_ms(words[1])
        elif words[:1] == ["99%"]:
            figures["p99_ms"] = to_ms(words[1])
        elif "requests in" in line:
            figures["requests"] = int(words[0])
        elif line.startswith("  Socket errors:"):
            # connect 0, read 0, write 0, timeout 0
            figures["socket_errors"] = sum(int(n) for n in re.findall(r"\d+", line))
        elif line.startswith("  Non-2xx or 3xx responses:"):
            figures["non_2xx"] = int(words[-1])
    return figures


def run_wrk(url, commands):
    argv = ["wrk", *WRK_ARGS, url]
    if argv not in commands:
        commands.append(argv)
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    figures = parse_wrk(done.stdout)
    if done.returncode != 0 or figures["rps"] is None:
        print(done.stdout, file=sys.stderr)
        raise SystemExit(f"wrk failed against {url} (exit {done.returncode})")
    return figures


def probe(port):
    """While wrk holds its 50 connections: how long does a 51st client wait
    for its first response? Seconds, or None after PROBE_TIMEOUT."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(b"GET /file.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            read_response(sock)
    except (OSError, ConnectionError):
        return None
    return time.monotonic() - started


def run_wrk_with_probe(url, port, commands):
    """One wrk run, with a probe client 2 s into it."""
    argv = ["wrk", *WRK_ARGS, url]
    wrk = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(2)
        waited = probe(port)
        output, _ = wrk.communicate(timeout=60)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    figures = parse_wrk(output)
    if wrk.returncode != 0 or figures["rps"] is None:
        print(output, file=sys.stderr)
        raise SystemExit(f"wrk failed against {url} (exit {wrk.returncode})")
    figures["probe_s"] = waited
    return figures


def read_response(sock):
    """Read one HTTP response with a Content-Length body; return its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the response head ended")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of the body")
        body += chunk
    return int(lines[0].split()[1])


def status_kib(pid, key):
    """A `VmRSS:   1234 kB` line of /proc/PID/status, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def memory(netlab, root, commands, model):
    """1,000 keep-alive connections to a fresh netlab: its memory."""
    argv = [netlab, "--json", "--quiet", "http-server", "--host", "127.0.0.1",
            "--port", "0", "--root", root, "--model", model]
    commands.append(argv)
    server = Server("netlab", argv)
    conns = []
    result = {"opened": 0, "answered": 0, "answered_again": 0}
    request = b"GET /file.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    try:
        result["rss_before_kib"] = status_kib(server.pid, "VmRSS")
        for _ in range(CONNS):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            conns.append(sock)
            result["opened"] += 1
            sock.sendall(request)
            if read_response(sock) == 200:
                result["answered"] += 1
        # All 1,000 open and idle, each after one answered request.
        time.sleep(0.5)
        result["rss_kib"] = status_kib(server.pid, "VmRSS")
        result["hwm_kib"] = status_kib(server.pid, "VmHWM")
        result["server_fds"] = len(os.listdir(f"/proc/{server.pid}/fd"))
        with open(f"/proc/{server.pid}/status", encoding="ascii") as status:
            result["threads"] = next(int(line.split()[1]) for line in status
                                     if line.startswith("Threads:"))
        # Proof that they were kept alive: a second request on each.
        for sock in conns:
            sock.sendall(request)
            if read_response(sock) == 200:
                result["answered_again"] += 1
    finally:
        for sock in conns:
            sock.close()
        server.stop()
    return result


def machine():
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "cpu": model,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nginx": subprocess.run(["nginx", "-v"], stderr=subprocess.PIPE, text=True).stderr.strip(),
        "wrk": subprocess.run(["wrk", "--version"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True).stdout.split(" [")[0].strip(),
        "python": platform.python_version(),
    }


def fmt(value, digits=2):
    return "n/a" if value is None else f"{value:,.{digits}f}"


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    netlab, out = os.path.abspath(sys.argv[1]), sys.argv[2]
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None
               and not os.path.exists(f"/usr/sbin/{tool}")]
    if missing:
        raise SystemExit(f"bench/http.py needs {' and '.join(missing)}: "
                         f"install with `apt-get install nginx wrk` (Debian, as root)")
    os.environ["PATH"] += os.pathsep + "/usr/sbin"   # nginx lives there
    # 1,000 connections need 1,000 descriptors here and in netlab.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4 * CONNS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4 * CONNS, hard), hard))

    tmp = tempfile.mkdtemp(prefix="netlab-bench-http-")
    # nginx's worker runs as nobody when started by root: it must be able to
    # read the files.
    os.chmod(tmp, 0o755)
    root = os.path.join(tmp, "www")
    os.mkdir(root)
    with open(os.path.join(root, "file.bin"), "wb") as handle:
        handle.write(bytes(range(256)) * (FILE_SIZE // 256))

    commands = []
    servers = []
    try:
        netlab_argv = [netlab, "--json", "--quiet", "http-server", "--host", "127.0.0.1",
                       "--port", "0", "--root", root]
        servers.append(Server("netlab http-server (epoll)", netlab_argv))
        commands.append(netlab_argv)

        nginx_port = free_port()
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as handle:
            handle.write(NGINX_CONF.format(tmp=tmp, port=nginx_port, root=root))
        nginx_argv = ["nginx", "-p", tmp + "/", "-e", os.path.join(tmp, "error.log"), "-c", conf]
        servers.append(Server("nginx, 1 worker", nginx_argv, nginx_port))
        commands.append(nginx_argv)

        python_port = free_port()
        python_argv = ["python3", "-m", "http.server", "--bind", "127.0.0.1",
                       str(python_port), "--directory", root]
        servers.append(Server("python3 -m http.server", python_argv, python_port))
        commands.append(python_argv)

        # Alternate the servers in each round (and rotate who goes first),
        # so that whatever else the machine does affects all alike.
        runs = {server.name: [] for server in servers}
        for number in range(ROUNDS):
            order = servers[number % len(servers):] + servers[:number % len(servers)]
            for server in order:
                print(f"round {number + 1}: {server.name}", file=sys.stderr)
                figures = run_wrk(f"http://127.0.0.1:{server.port}/file.bin", commands)
                runs[server.name].append(figures)
        # netlab's three models, once each, with a 51st client probing.
        models = {}
        for model in ("epoll", "thread", "iterative"):
            argv = netlab_argv + ["--model", model]
            commands.append(argv)
            print(f"model: {model}", file=sys.stderr)
            server = Server(model, argv)
            try:
                url = f"http://127.0.0.1:{server.port}/file.bin"
                models[model] = run_wrk_with_probe(url, server.port, commands)
            finally:
                server.stop()
        print(f"memory: {CONNS} keep-alive connections to a fresh netlab", file=sys.stderr)
        mem = memory(netlab, root, commands, "epoll")
        print("memory: the same with --model thread", file=sys.stderr)
        mem_thread = memory(netlab, root, commands, "thread")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    text = report(machine(), [s.name for s in servers], runs, models, mem, mem_thread, commands, tmp)
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text)
    print(f"figures written to {out}", file=sys.stderr)


def median_of(figures, key):
    values = [run[key] for run in figures if run[key] is not None]
    return statistics.median(values) if values else None


def report(host, names, runs, models, mem, mem_thread, commands, tmp):
    netlab_name, nginx_name, _ = names
    lines = [
        "# http-server benchmark",
        "",
        "Produced by `make bench` (the script is `bench/http.py`, run after",
        "`bench/run.py`). Re-run it to measure your own machine. The figures",
        "below are from one run; on a shared 2-core machine single rounds",
        "differ by up to a third (the table shows each round), which is why",
        "the servers take turns and the verdict uses medians.",
        "",
        f"- Machine: {host['nproc']} CPUs ({host['cpu']}), Linux {host['kernel']}",
        f"- Date: {host['date']}",
        f"- {host['nginx']}; {host['wrk']}; Python {host['python']}",
        "- Everything runs over loopback on this one machine: wrk's two threads",
        "  compete with the server for the same two cores, for every server alike.",
        f"- The file: {FILE_SIZE} bytes (`file.bin`), the same file for all three.",
        "",
        "## Requests per second",
        "",
        f"`wrk {' '.join(WRK_ARGS)}` (2 threads, 50 keep-alive connections, 5 s),",
        f"{ROUNDS} rounds with the servers in turn; each figure is the median of",
        "the rounds (latency: the median of each run's figure).",
        "",
        "| server | requests/s (median) | each round | latency avg | p50 | p99 | socket errors | non-2xx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        figures = runs[name]
        rounds = ", ".join(fmt(run["rps"], 0) for run in figures)
        lines.append(
            f"| {name} | **{fmt(median_of(figures, 'rps'), 0)}** | {rounds} "
            f"| {fmt(median_of(figures, 'avg_ms'))} ms | {fmt(median_of(figures, 'p50_ms'))} ms "
            f"| {fmt(median_of(figures, 'p99_ms'))} ms "
            f"| {sum(run['socket_errors'] for run in figures)} "
            f"| {sum(run['non_2xx'] for run in figures)} |"
        )
    netlab_rps = median_of(runs[netlab_name], "rps")
    nginx_rps = median_of(runs[nginx_name], "rps")
    ratio = netlab_rps / nginx_rps if netlab_rps and nginx_rps else None
    errors = sum(run["socket_errors"] + run["non_2xx"] for run in runs[netlab_name])
    rss = mem.get("rss_kib")

    def verdict(ok):
        return "PASS" if ok else "FAIL"

    lines += [
        "",
        "Python's http.server answers HTTP/1.0 and closes the connection after",
        "each response, so wrk reconnects for every request there; it is in the",
        "table for scale, not as a target.",
        "",
        "## netlab's three models",
        "",
        "The same load once on each `--model`: `epoll` (one thread, the default),",
        "`thread` (a thread per connection) and `iterative` (one connection at a",
        "time). Two seconds into each run, a 51st client sends one request and",
        f"waits up to {PROBE_TIMEOUT} s for the answer. wrk's own figures count only the",
        "requests that were answered, so they cannot show the clients an",
        "iterative server never gets to; the probe does.",
        "",
        "| model | requests/s | latency avg | p50 | p99 | socket errors | non-2xx | the 51st client waited |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, run in models.items():
        waited = run.get("probe_s")
        waited_text = f"no answer in {PROBE_TIMEOUT} s" if waited is None else f"{waited * 1000:.1f} ms"
        lines.append(
            f"| {model} | {fmt(run['rps'], 0)} | {fmt(run['avg_ms'])} ms | {fmt(run['p50_ms'])} ms "
            f"| {fmt(run['p99_ms'])} ms | {run['socket_errors']} | {run['non_2xx']} | {waited_text} |"
        )
    lines += [
        "",
        f"## Memory with {CONNS:,} keep-alive connections",
        "",
        f"A fresh netlab (`--model epoll`, the default); {CONNS:,} connections, each",
        "sends one request for `file.bin` and reads the whole response, and all",
        "stay open. Then the server's `/proc/PID/status` is read, and every",
        "connection sends a second request (proof that none was closed). The",
        "same with `--model thread`, for comparison (no target for it).",
        "",
        "| figure | epoll | thread |",
        "|---|---|---|",
        f"| connections opened | {mem['opened']:,} | {mem_thread['opened']:,} |",
        f"| first requests answered 200 | {mem['answered']:,} | {mem_thread['answered']:,} |",
        f"| open descriptors in the server (/proc/PID/fd) | {mem.get('server_fds', 'n/a')} "
        f"| {mem_thread.get('server_fds', 'n/a')} |",
        f"| threads in the server (/proc/PID/status) | {mem.get('threads', 'n/a')} "
        f"| {mem_thread.get('threads', 'n/a')} |",
        f"| VmRSS before the connections | {fmt_kib(mem.get('rss_before_kib'))} "
        f"| {fmt_kib(mem_thread.get('rss_before_kib'))} |",
        f"| VmRSS with {CONNS:,} connections open | {fmt_kib(rss)} | {fmt_kib(mem_thread.get('rss_kib'))} |",
        f"| VmHWM (peak resident) | {fmt_kib(mem.get('hwm_kib'))} | {fmt_kib(mem_thread.get('hwm_kib'))} |",
        f"| second requests answered 200 | {mem['answered_again']:,} | {mem_thread['answered_again']:,} |",
        "",
        "## Verdict",
        "",
        f"- {verdict(ratio is not None and ratio >= RATIO_TARGET)}: netlab / nginx requests/s = "
        f"{fmt(netlab_rps, 0)} / {fmt(nginx_rps, 0)} = **{fmt(ratio, 3)}** (target: at least {RATIO_TARGET})",
        f"- {verdict(errors == 0)}: netlab's socket errors + non-2xx responses over all rounds = {errors} (target: 0)",
        f"- {verdict(rss is not None and rss < RSS_TARGET_KIB and mem['answered_again'] == CONNS)}: "
        f"VmRSS with {CONNS:,} keep-alive connections = {fmt_kib(rss)} (target: under 32 MiB), "
        f"{mem['answered_again']:,} of {CONNS:,} still answered",
        "",
        "## Commands",
        "",
        f"What the script ran (`DIR` is the temporary directory `{tmp}/www`;",
        "the nginx configuration is the `NGINX_CONF` text in bench/http.py,",
        "with the port it picked):",
        "",
        "```",
    ]
    for argv in commands:
        lines.append(display(argv).replace(tmp + "/www", "DIR").replace(tmp, "TMP"))
    lines += ["```", ""]
    return "\n".join(lines)


def fmt_kib(kib):
    return "n/a" if kib is None else f"{kib / 1024:.1f} MiB ({kib:,} KiB)"


if __name__ == "__main__":
    main()
