"""Hostile and broken clients against their own server instances with small
limits: connections that stall are closed after --idle-timeout, a body that
stops midway is dropped, a flood beyond --max-connections-per-ip is refused
while others are served, and a client that trickles one byte a second is cut
off. The server answers others throughout and ends cleanly."""
from __future__ import annotations

import json
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
        assert "still arriving after its timeout" in s.stderr_path.read_text()
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
