"""Hostile and broken clients against their own server instances with small
limits: connections that stall are closed after --idle-timeout, a body that
stops midway is dropped, a flood beyond --max-connections-per-ip is refused
while others are served, and a client that trickles one byte a second is cut
off. The server answers others throughout and ends cleanly."""
from __future__ import annotations

import json
import re
import signal
import socket
import ssl
import time

from conftest import ROOT, Server, fresh, load_fixture

POLICY = ROOT / "tests" / "fixtures" / "policy.yaml"
IDLE_S = 2


def closed_by_server(sock, within: float) -> bool:
    """Whether the server closes `sock` (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


def test_stalled_and_trickling_clients_are_cut_off(certs, workdir):
    s = Server("faults-idle", certs, POLICY, workdir, extra=["--idle-timeout", IDLE_S]).start()
    try:
        c = s.client()
        body = json.dumps(fresh(load_fixture("spark35-driver.json"))).encode()
        # TLS done, the head and a third of the body, then nothing.
        midway = c.tls_socket()
        midway.sendall(f"POST /mutate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 3])
        # A TCP connection that never starts TLS.
        silent = socket.create_connection(("127.0.0.1", s.port))
        t0 = time.monotonic()
        assert c.review(fresh(load_fixture("spark35-executor.json")))["response"]["allowed"] is True
        assert closed_by_server(midway, IDLE_S + 3), "a body that stopped midway kept its connection"
        assert closed_by_server(silent, IDLE_S + 3), "a silent connection was kept"
        assert time.monotonic() - t0 < IDLE_S + 4

        # One byte a second: the request's ?timeout=2s passes before the body ends.
        trickle = c.tls_socket()
        trickle.sendall(f"POST /mutate?timeout=2s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n".encode())
        cut = False
        for i in range(8):
            try:
                trickle.sendall(body[i:i + 1])
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                cut = True   # the server closed it
                break
            time.sleep(1)
        assert cut or closed_by_server(trickle, 3), "a client trickling one byte a second was not cut off"
        assert c.review(fresh(load_fixture("spark35-driver.json")))["response"]["allowed"] is True
        st, _, metrics = c.request("GET", "/metrics")
        assert st == 200
        m = re.search(rb'connections_closed_total\{reason="body-timeout"\} (\d+)', metrics)
        assert m and int(m.group(1)) >= 1, metrics   # the trickler (the others idled out first)
    finally:
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(10) == 0, s.stderr()
        s.stop()


def test_a_connection_flood_is_bounded_and_others_are_served(certs, workdir):
    per_ip = 20
    s = Server("faults-flood", certs, POLICY, workdir,
               extra=["--max-connections-per-ip", per_ip, "--max-connections", 64, "--idle-timeout", 5]).start()
    flood = []
    try:
        for _ in range(per_ip + 30):
            try:
                flood.append(socket.create_connection(("127.0.0.1", s.port), timeout=2))
            except OSError:
                break
        time.sleep(0.3)
        refused = sum(1 for sock in flood if closed_by_server(sock, 0.2))
        assert refused >= len(flood) - per_ip, f"{refused} of {len(flood)} closed; the limit is {per_ip}"
        for sock in flood:
            sock.close()
        flood.clear()
        time.sleep(0.3)
        c = s.client()
        for _ in range(5):
            assert c.review(fresh(load_fixture("spark35-driver.json")))["response"]["allowed"] is True
    finally:
        for sock in flood:
            sock.close()
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(10) == 0, s.stderr()
        s.stop()


def _vm(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _array_review(size: int) -> bytes:
    n = (size - 100) // 2
    return (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"a","x":['
            + b",".join([b"1"] * n) + b"]}}")


def test_parse_amplification_is_refused_with_413_and_bounded(certs, workdir):
    """A 3 MiB array of small numbers would take 40 times its size as
    parsed nodes: refused by its shape (413, saying which bound), and the
    server's memory stays far from it."""
    s = Server("faults-amplify", certs, POLICY, workdir).start()
    try:
        c = s.client()
        body = _array_review(3 << 20)
        st, hdrs, data = c.post_raw(body, timeout=30)
        assert st == 413, data
        msg = json.loads(data)["message"]
        assert "to parse" in msg and "8 times its" in msg, msg
        # Parsing it took the server to 134 MB; now the body alone is held
        # (about 15 MB in all; the ASan build's quarantine adds some 60 MB).
        assert _vm(s.proc.pid, "VmHWM") < 100 << 20, _vm(s.proc.pid, "VmHWM")
        assert c.review(fresh(load_fixture("spark35-driver.json")))["response"]["allowed"] is True
    finally:
        s.stop()


def test_request_memory_is_shared_and_keeps_room_for_small_reviews(certs, workdir):
    """--request-memory bounds the bodies of all requests in flight: a large
    body that would pass it is refused with 503 before it arrives whole, and
    a quarter stays for the small reviews the API server sends."""
    s = Server("faults-budget", certs, POLICY, workdir, extra=["--request-memory", "4M"]).start()
    held = []
    try:
        c = s.client()
        big = 3 << 20
        # One connection that has sent 2 MiB of a declared 3 MiB body and waits.
        h = c.tls_socket()
        h.sendall(f"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {big}\r\n\r\n".encode() + b"[" + b"1," * (1 << 20))
        held.append(h)
        time.sleep(0.5)
        # A second large body cannot have what is left of the large part.
        t = c.tls_socket()
        t.sendall(f"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {big}\r\n\r\n".encode())
        try:
            for _ in range(48):
                t.sendall(b"1," * 32768)
        except OSError:
            pass
        t.settimeout(5)
        answer = b""
        while b"}" not in answer:
            chunk = t.recv(4096)
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"--request-memory" in answer, answer
        # A driver review still fits in the part kept for small ones.
        assert c.review(fresh(load_fixture("spark35-driver.json")))["response"]["allowed"] is True
        st, _, metrics = c.request("GET", "/metrics")
        assert re.search(rb"request_memory_refused_total [1-9]", metrics), metrics
    finally:
        for h in held:
            h.close()
        s.stop()
