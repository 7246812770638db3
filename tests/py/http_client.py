#!/usr/bin/env python3
"""Python's http.client against netlab http-server --root DIR.

Usage: http_client.py HOST PORT SERVER_PID
The root must hold index.html, bin.dat (every byte value) and big.dat (a
large file). On ONE connection: GET / three times, GET /bin.dat, HEAD
/big.dat, GET /big.dat streamed in 64 KiB reads (hashed, never held whole),
and while it streams, the server's VmRSS is sampled from /proc/PID/status.
Prints one JSON object with what it saw.
"""
import hashlib
import http.client
import json
import sys


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main() -> int:
    host, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    conn = http.client.HTTPConnection(host, port, timeout=10)
    seen = {"statuses": [], "sockets": set()}

    def request(method: str, path: str):
        conn.request(method, path)
        # http.client opens the socket on the first request and keeps it
        # while the server keeps the connection alive.
        seen["sockets"].add(conn.sock.getsockname()[1])
        return conn.getresponse()

    for _ in range(3):
        response = request("GET", "/")
        body = response.read()
        seen["statuses"].append(response.status)
        seen["index"] = body.decode("utf-8", "replace")

    response = request("GET", "/bin.dat")
    binary = response.read()
    seen["statuses"].append(response.status)
    seen["bin_sha256"] = hashlib.sha256(binary).hexdigest()
    seen["bin_len"] = len(binary)
    seen["bin_type"] = response.getheader("Content-Type")

    response = request("HEAD", "/big.dat")
    response.read()
    seen["statuses"].append(response.status)
    seen["head_length"] = int(response.getheader("Content-Length", "-1"))

    response = request("GET", "/big.dat")
    digest = hashlib.sha256()
    total = 0
    rss_max = 0
    while True:
        chunk = response.read(65536)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
        if total % (1 << 20) < 65536:
            rss_max = max(rss_max, vm_rss_kib(pid))
    seen["statuses"].append(response.status)
    seen["big_sha256"] = digest.hexdigest()
    seen["big_len"] = total
    seen["rss_max_kib"] = rss_max

    # One more request on the same connection after the stream.
    response = request("GET", "/")
    response.read()
    seen["statuses"].append(response.status)
    seen["connections"] = len(seen.pop("sockets"))
    conn.close()
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
