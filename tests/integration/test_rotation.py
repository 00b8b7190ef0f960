"""Certificates that change under a running server: new handshakes get the
new pair with no restart and no failed request, open connections keep
theirs, a bad pair is refused while the old one keeps serving, and SIGHUP
reloads too."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

from conftest import NAMESPACE, ROOT, SERVICE, SNI, Server, fresh, load_fixture, make_certs, run_bin

# How long the client loop runs across a rotation, and how long a change may
# take to reach the server (inotify, or the 2 s poll).
LOOP_SECONDS = 4.0
FOLLOW_TIMEOUT_S = 10.0


class KubeletVolume:
    """A directory laid out like a Secret volume: tls.crt and tls.key are
    links into ..data, a link to a versioned directory that an update
    replaces in one rename."""

    def __init__(self, root: Path, source: Path):
        self.root = root
        root.mkdir()
        self.version = 0
        self.publish(source)
        os.symlink("..data/tls.crt", root / "tls.crt")
        os.symlink("..data/tls.key", root / "tls.key")

    def publish(self, source: Path, key_from: Path | None = None):
        self.version += 1
        d = self.root / f"..v{self.version}"
        d.mkdir()
        shutil.copy(source / "tls.crt", d / "tls.crt")
        shutil.copy((key_from or source) / "tls.key", d / "tls.key")
        tmp = self.root / "..data_tmp"
        os.symlink(d.name, tmp)
        os.replace(tmp, self.root / "..data")


def serial_of(cert: Path) -> str:
    """The certificate's serial as OpenSSL prints it (hex), without leading zeros."""
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(cert)], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip().split("=", 1)[1].upper().lstrip("0")


def new_connection(port: int, ca: Path) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=str(ca))

    class C(http.client.HTTPSConnection):
        def connect(self):
            http.client.HTTPConnection.connect(self)
            self.sock = ctx.wrap_socket(self.sock, server_hostname=SNI)

    c = C("127.0.0.1", port, timeout=5)
    c.connect()
    return c


def peer_serial(conn: http.client.HTTPSConnection) -> str:
    return conn.sock.getpeercert()["serialNumber"].upper().lstrip("0")


def review_ok(conn: http.client.HTTPSConnection, body: bytes) -> bool:
    conn.request("POST", "/mutate?timeout=10s", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    return r.status == 200 and json.loads(data)["response"]["allowed"] is True


def wait_serial(port: int, ca: Path, want: str) -> str:
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    got = ""
    while time.monotonic() < deadline:
        c = new_connection(port, ca)
        got = peer_serial(c)
        c.close()
        if got == want:
            return got
        time.sleep(0.05)
    return got


def test_rotation_under_load_fails_no_request(tmp_path, workdir):
    first = make_certs(tmp_path / "first")
    second = tmp_path / "second"
    shutil.copytree(first.dir, second)
    p = run_bin("certs", "--service", SERVICE, "--namespace", NAMESPACE, "--ip", "127.0.0.1",
                "--out", second, "--renew")
    assert p.returncode == 0, p.stderr.decode()
    s1, s2 = serial_of(first.cert), serial_of(second / "tls.crt")
    assert s1 != s2

    vol = KubeletVolume(tmp_path / "volume", first.dir)
    server = Server("rotation", first, ROOT / "tests" / "fixtures" / "policy.yaml", workdir)
    server.args[server.args.index("--tls-cert") + 1] = str(vol.root / "tls.crt")
    server.args[server.args.index("--tls-key") + 1] = str(vol.root / "tls.key")
    server.start()
    body = json.dumps(fresh(load_fixture("spark35-driver.json"))).encode()
    try:
        kept = new_connection(server.port, first.ca)
        assert peer_serial(kept) == s1
        assert review_ok(kept, body)

        failures, seen, stop = [], [], threading.Event()

        def loop():
            while not stop.is_set():
                try:
                    c = new_connection(server.port, first.ca)
                    seen.append(peer_serial(c))
                    if not review_ok(c, body):
                        failures.append("answer")
                    c.close()
                except Exception as e:  # every failure counts
                    failures.append(repr(e))

        threads = [threading.Thread(target=loop) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(LOOP_SECONDS / 2)
        vol.publish(second)
        assert wait_serial(server.port, first.ca, s2) == s2, server.stderr()
        time.sleep(LOOP_SECONDS / 2)
        stop.set()
        for t in threads:
            t.join()
        assert failures == [], failures[:5]
        assert s1 in seen and s2 in seen, set(seen)
        assert seen[-1] == s2
        # The connection opened before the rotation finishes on the old pair.
        assert review_ok(kept, body) and peer_serial(kept) == s1
        kept.close()
        reloaded = [json.loads(l) for l in server.stderr(200).splitlines() if '"certificate reloaded"' in l]
        assert reloaded and reloaded[-1]["serial"].upper().lstrip("0") == s2, reloaded
    finally:
        server.stop()


def test_bad_pairs_are_refused_and_the_old_pair_keeps_serving(tmp_path, workdir):
    first = make_certs(tmp_path / "first")
    other = make_certs(tmp_path / "other")
    vol = KubeletVolume(tmp_path / "volume", first.dir)
    server = Server("bad-pairs", first, ROOT / "tests" / "fixtures" / "policy.yaml", workdir)
    server.args[server.args.index("--tls-cert") + 1] = str(vol.root / "tls.crt")
    server.args[server.args.index("--tls-key") + 1] = str(vol.root / "tls.key")
    server.start()
    try:
        s1 = serial_of(first.cert)
        # The other pair's certificate with the first pair's key: no match.
        vol.publish(other.dir, key_from=first.dir)
        deadline = time.monotonic() + FOLLOW_TIMEOUT_S
        while "certificate reload refused" not in server.stderr(200) and time.monotonic() < deadline:
            time.sleep(0.05)
        log = server.stderr(200)
        assert "certificate reload refused; the old pair keeps serving" in log, log
        assert "does not match" in log, log
        c = new_connection(server.port, first.ca)
        assert peer_serial(c) == s1
        c.close()
        assert server.client().request("GET", "/readyz")[0] == 200

        # SIGHUP reloads a good pair written in place.
        shutil.copy(other.cert, vol.root / "..data" / "tls.crt")
        shutil.copy(other.key, vol.root / "..data" / "tls.key")
        server.proc.send_signal(signal.SIGHUP)
        assert wait_serial(server.port, other.ca, serial_of(other.cert)) == serial_of(other.cert)
    finally:
        server.stop()


def test_tls_min_version_13_refuses_tls_12(tmp_path, certs, workdir):
    server = Server("tls13", certs, ROOT / "tests" / "fixtures" / "policy.yaml", workdir,
                    extra=["--tls-min-version", "1.3"]).start()
    try:
        ctx = ssl.create_default_context(cafile=str(certs.ca))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            try:
                ctx.wrap_socket(raw, server_hostname=SNI)
                refused = False
            except ssl.SSLError:
                refused = True
        assert refused
        c = new_connection(server.port, certs.ca)
        assert c.sock.version() == "TLSv1.3"
        c.close()
    finally:
        server.stop()


FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def test_readyz_fails_once_the_certificate_has_expired(tmp_path, workdir):
    """The server's clock is moved past the certificate's end with
    libfaketime (Debian's faketime package), which it reads anew at every
    call: /readyz then answers 503 and says why."""
    assert FAKETIME_LIB.exists(), "libfaketime is missing: run .ci/deps.sh"
    short = make_certs(tmp_path / "short", "--days", "1")
    clock = tmp_path / "faketime"
    clock.write_text("+0d\n")
    server = Server("expiry", short, ROOT / "tests" / "fixtures" / "policy.yaml", workdir)
    server.env = dict(os.environ, LD_PRELOAD=str(FAKETIME_LIB), FAKETIME_TIMESTAMP_FILE=str(clock),
                      FAKETIME_NO_CACHE="1",
                      ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    server.start()
    try:
        st, _, body = server.client().request("GET", "/readyz")
        assert st == 200 and json.loads(body)["certificateDaysLeft"] in (0, 1), body
        clock.write_text("+2d\n")
        st, _, body = server.client().request("GET", "/readyz")
        assert st == 503, body
        assert json.loads(body)["reason"] == "the serving certificate has expired", body
        assert server.client().request("GET", "/healthz")[0] == 200
    finally:
        server.stop()
