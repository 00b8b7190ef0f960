"""Hostile clients against the real server on loopback, all at once, while
a legitimate client measures what the API server would see.

  python3 tests/attack/attack.py BINARY [--seconds 60] [--out DIR]

Attacks (each in its own process, bounded in count and time, loopback only):
  memory   AdmissionReviews whose body is a huge [1,1,1,...] array (3 and
           8 MiB), sent back to back; and 200 connections that each declare
           and trickle a 7 MiB body
  slow     from 127.0.0.2 and 127.0.0.3: 512 connections each sending one
           header byte every 10 s, and 512 each that finish TLS and say nothing
The probe, from 127.0.0.1: a driver review on a fresh TLS connection ten
times a second, and GET /healthz once a second. Resident memory of the
server is sampled every 250 ms.

What must hold (the exit status is 0 only then; the JSON report says why):
  - resident memory never above the Deployment's limit (128 MiB);
  - every probe answered, p99 < 100 ms; /healthz never fails;
  - 30 s after the attack, resident memory within 8 MiB of where it started.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DRIVER = json.loads((ROOT / "tests" / "fixtures" / "spark35-driver.json").read_text())
LIMIT_BYTES = 128 * 1024 * 1024          # deploy/base/deployment.yaml: limits.memory 128Mi
SETTLE_S = 30
RECOVER_BYTES = 8 * 1024 * 1024
P99_MS = 100.0


def raise_nofile(n: int = 16384) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def tls_ctx(ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False   # the certificate is for 127.0.0.1 by IP; verified against our CA
    return ctx


def head(length: int, path: str = "/mutate?timeout=10s") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: spark-identity-webhook.spark-identity-system.svc\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def array_body(size: int) -> bytes:
    n = max(1, (size - 100) // 2)
    return (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"a","x":['
            + b",".join([b"1"] * n) + b"]}}")


# ---------------------------------------------------------------------------
# Attackers (separate processes)
# ---------------------------------------------------------------------------

def attacker() -> None:
    """Attackers run on other machines in a cluster: here they share the
    server's cores, so they run niced, and what is measured is the server's
    answer to their traffic, not their own appetite for CPU."""
    os.nice(10)
    raise_nofile()


def big_bodies(port: int, ca: str, until: float, sizes: list[int]) -> None:
    attacker()
    ctx = tls_ctx(Path(ca))
    bodies = [array_body(s) for s in sizes]
    i = 0
    while time.monotonic() < until:
        body = bodies[i % len(bodies)]
        i += 1
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                    ctx.wrap_socket(raw) as s:
                s.sendall(head(len(body)) + body)
                s.recv(256)
        except OSError:
            time.sleep(0.05)


def held_bodies(port: int, ca: str, until: float, count: int, size: int) -> None:
    """`count` connections that declare `size` bytes and send them slowly,
    reconnecting when the server closes them."""
    attacker()
    ctx = tls_ctx(Path(ca))
    chunk = b"1," * 32768
    conns: list = []
    while time.monotonic() < until:
        while len(conns) < count and time.monotonic() < until:
            try:
                raw = socket.create_connection(("127.0.0.1", port), timeout=5)
                s = ctx.wrap_socket(raw)
                s.sendall(head(size) + b'{"kind":"AdmissionReview","x":[')
                s.settimeout(0.2)
                conns.append([s, 0])
            except OSError:
                time.sleep(0.05)
                break
        alive = []
        for c in conns:
            try:
                if c[1] < size - len(chunk) * 2:
                    c[0].sendall(chunk)
                    c[1] += len(chunk)
                alive.append(c)
            except OSError:
                c[0].close()
        conns = alive
        time.sleep(0.2)
    for c in conns:
        c[0].close()


def slow_clients(port: int, ca: str, until: float, source: str, trickle: int, idle: int) -> None:
    """From `source`: `trickle` plain connections sending one header byte
    every 10 s, and `idle` that finish TLS and then say nothing; both
    reconnect when closed."""
    attacker()
    ctx = tls_ctx(Path(ca))
    req = head(10)
    tricklers: list = []
    idlers: list = []
    while time.monotonic() < until:
        for lst, n, tls in ((tricklers, trickle, False), (idlers, idle, True)):
            while len(lst) < n and time.monotonic() < until:
                try:
                    raw = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
                    if tls:
                        raw = ctx.wrap_socket(raw)
                    raw.setblocking(False)
                    lst.append([raw, 0, time.monotonic()])
                except OSError:
                    time.sleep(0.1)
                    break
        now = time.monotonic()
        keep = []
        for c in tricklers:
            try:
                if now - c[2] >= 10:
                    c[0].send(req[c[1] % len(req):c[1] % len(req) + 1])   # raw TCP: a ClientHello byte
                    c[1] += 1
                    c[2] = now
                keep.append(c)
            except (BlockingIOError, ssl.SSLWantWriteError):
                keep.append(c)
            except OSError:
                c[0].close()
        tricklers = keep
        keep = []
        for c in idlers:
            try:
                if c[0].recv(1) == b"":
                    raise ConnectionResetError
                keep.append(c)
            except (BlockingIOError, ssl.SSLWantReadError):
                keep.append(c)
            except OSError:
                c[0].close()
        idlers = keep
        time.sleep(0.25)
    for c in tricklers + idlers:
        c[0].close()


# ---------------------------------------------------------------------------
# The probe
# ---------------------------------------------------------------------------

def connect(port: int) -> socket.socket:
    """A client socket as the API server (Go) makes them: TCP_NODELAY."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return raw


def probe(port: int, ca: Path, until: float, out: mp.Queue) -> None:
    ctx = tls_ctx(ca)
    body = json.dumps(DRIVER).encode()
    lat, failures, health_fail, n = [], [], 0, 0
    next_health = 0.0
    while time.monotonic() < until:
        t0 = time.monotonic()
        try:
            with connect(port) as raw, ctx.wrap_socket(raw) as s:
                s.settimeout(5)
                s.sendall(head(len(body)) + body)
                data = b""
                while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            if not data.startswith(b"HTTP/1.1 200") or b'"allowed":true' not in data:
                failures.append(data[:120].decode(errors="replace"))
            else:
                lat.append((time.monotonic() - t0) * 1000)
        except OSError as e:
            failures.append(repr(e))
        n += 1
        if t0 >= next_health:
            next_health = t0 + 1
            try:
                with connect(port) as raw, ctx.wrap_socket(raw) as s:
                    s.settimeout(5)
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if not s.recv(64).startswith(b"HTTP/1.1 200"):
                        health_fail += 1
            except OSError:
                health_fail += 1
        time.sleep(max(0, 0.1 - (time.monotonic() - t0)))
    out.put({"probes": n, "latencies_ms": lat, "failures": failures[:20], "n_failures": len(failures),
             "healthz_failures": health_fail})


def write_junit(checks: dict, report: dict, path: str) -> None:
    detail = json.dumps({k: v for k, v in report.items() if k != "checks"})
    suite = ET.Element("testsuite", name="attack", tests=str(len(checks)),
                       failures=str(sum(1 for ok in checks.values() if not ok)), errors="0", skipped="0")
    for name, ok in checks.items():
        case = ET.SubElement(suite, "testcase", classname="attack", name=name, time="0")
        if ok:
            ET.SubElement(case, "system-out").text = detail
        else:
            ET.SubElement(case, "failure", message=name).text = detail
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("inf")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


# ---------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--out", default=None, help="directory for the report (attack.json) and the server's log")
    ap.add_argument("--slow-per-address", type=int, default=512)
    ap.add_argument("--junit", help="write each check as a JUnit test case here")
    a = ap.parse_args()
    raise_nofile()
    out = Path(a.out or tempfile.mkdtemp(prefix="attack-"))
    out.mkdir(parents=True, exist_ok=True)
    certs = out / "certs"
    subprocess.run([a.binary, "certs", "--service", "spark-identity-webhook", "--namespace", "spark-identity-system",
                    "--ip", "127.0.0.1", "--out", str(certs), "--force"], check=True, capture_output=True)
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    log = open(out / "server.log", "wb")
    server = subprocess.Popen([a.binary, "serve", "--policy", str(ROOT / "deploy" / "policy.yaml"),
                               "--tls-cert", str(certs / "tls.crt"), "--tls-key", str(certs / "tls.key"),
                               "--listen", f"127.0.0.1:{port}", "--log-level", "error"],
                              stderr=log, preexec_fn=lambda: raise_nofile(65536))
    report: dict = {"seconds": a.seconds, "limit_bytes": LIMIT_BYTES}
    procs: list[mp.Process] = []
    try:
        ctx = tls_ctx(certs / "ca.crt")
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as raw, ctx.wrap_socket(raw):
                    break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        start_rss = rss(server.pid)
        report["rss_start_bytes"] = start_rss
        until = time.monotonic() + a.seconds
        ca = str(certs / "ca.crt")
        q: mp.Queue = mp.Queue()
        procs = [
            mp.Process(target=big_bodies, args=(port, ca, until, [3 << 20, (8 << 20) - 4096])),
            mp.Process(target=big_bodies, args=(port, ca, until, [3 << 20])),
            mp.Process(target=held_bodies, args=(port, ca, until, 200, 7 << 20)),
            mp.Process(target=slow_clients, args=(port, ca, until, "127.0.0.2", a.slow_per_address, a.slow_per_address)),
            mp.Process(target=slow_clients, args=(port, ca, until, "127.0.0.3", a.slow_per_address, a.slow_per_address)),
        ]
        for p in procs:
            p.start()
        time.sleep(2)   # the attack in place before the probe starts
        pr = mp.Process(target=probe, args=(port, certs / "ca.crt", until, q))
        pr.start()
        peak = start_rss
        samples = []
        while time.monotonic() < until:
            r = rss(server.pid)
            peak = max(peak, r)
            samples.append(r)
            time.sleep(0.25)
        pr.join(15)
        res = q.get(timeout=10)
        for p in procs:
            p.join(15)
            if p.is_alive():
                p.kill()
        settle_until = time.monotonic() + SETTLE_S
        while time.monotonic() < settle_until:
            peak = max(peak, rss(server.pid))
            time.sleep(0.5)
        end_rss = rss(server.pid)
        lat = res.pop("latencies_ms")
        report.update(res)
        report.update({
            "rss_peak_bytes": peak, "rss_after_bytes": end_rss,
            "p50_ms": round(percentile(lat, 0.50), 2), "p99_ms": round(percentile(lat, 0.99), 2),
            "max_ms": round(max(lat), 2) if lat else None,
            "server_alive": server.poll() is None,
        })
        checks = {
            "memory never above the limit": peak <= LIMIT_BYTES,
            "every probe answered": res["n_failures"] == 0 and res["probes"] > 0,
            "probe p99 under 100 ms": report["p99_ms"] < P99_MS,
            "/healthz never failed": res["healthz_failures"] == 0,
            "memory back within 8 MiB": end_rss <= start_rss + RECOVER_BYTES,
            "the server is still running": report["server_alive"],
        }
        report["checks"] = checks
        ok = all(checks.values())
        if a.junit:
            write_junit(checks, report, a.junit)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    (out / "attack.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
