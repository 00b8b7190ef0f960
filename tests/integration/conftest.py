"""Shared helpers for the integration tests: certificates from the binary's own
`certs` command, the real server started on a free port, HTTPS with SNI and
hostname verification against the generated CA, and the checks every
AdmissionReview answer must pass.

Python 3.11 standard library, pytest and jsonpatch only.
"""
from __future__ import annotations

import base64
import copy
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jsonpatch
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import model  # noqa: E402

ROOT = HERE.parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
POLICY = FIXTURES / "policy.yaml"
POLICY_UNMATCHED_DENY = FIXTURES / "policy-unmatched-deny.yaml"
BIN = Path(os.environ.get("WEBHOOK_BIN") or ROOT / "build" / "spark-identity-webhook")

SERVICE = "spark-identity-webhook"
NAMESPACE = "spark-identity-system"
SNI = f"{SERVICE}.{NAMESPACE}.svc"
MUTATE = "/mutate?timeout=10s"
SMALL_MAX_BODY = 65536

SPARK_FIXTURES = [
    "spark35-driver.json",
    "spark35-pyspark-driver.json",
    "spark35-executor.json",
    "spark33-executor.json",
    "spark24-executor.json",
    "spark35-driver-template-sidecar.json",
    "spark35-driver-template-sidecar-first.json",
    "spark35-driver-foreign-identity.json",
    "spark35-driver-mutated.json",
    "spark35-driver-valuefrom.json",
    "spark35-driver-v1beta1.json",
]
OTHER_FIXTURES = [
    "nginx-pod.json",
    "api-pod-allowed.json",
    "rogue-pod.json",
    "spark35-driver-update.json",
    "configmap-create.json",
]
ALL_FIXTURES = SPARK_FIXTURES + OTHER_FIXTURES


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def policy() -> dict:
    return model.load_policy(POLICY)


def fresh(review: dict) -> dict:
    """A copy of `review` with a new request uid."""
    r = copy.deepcopy(review)
    r["request"]["uid"] = str(uuid.uuid4())
    return r


def in_namespace(review: dict, ns: str) -> dict:
    r = fresh(review)
    r["request"]["namespace"] = ns
    obj = r["request"]["object"]
    if obj and "namespace" in obj.get("metadata", {}):
        obj["metadata"]["namespace"] = ns
    return r


def with_object(review: dict, obj: dict) -> dict:
    r = fresh(review)
    r["request"]["object"] = obj
    return r


def env_of(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


def spark_container(pod: dict) -> dict:
    return pod["spec"]["containers"][model.spark_container_index(pod)]


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

def run_bin(*args, input: bytes | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *map(str, args)], input=input, capture_output=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Certs:
    def __init__(self, out: Path):
        self.dir = out
        self.ca = out / "ca.crt"
        self.ca_key = out / "ca.key"
        self.cert = out / "tls.crt"
        self.key = out / "tls.key"


def make_certs(out: Path, *extra) -> Certs:
    p = run_bin("certs", "--service", SERVICE, "--namespace", NAMESPACE, "--out", out, "--ip", "127.0.0.1", *extra)
    assert p.returncode == 0, f"certs failed ({p.returncode}): {p.stderr.decode(errors='replace')}"
    return Certs(out)


_SERVERS: list["Server"] = []


class Server:
    def __init__(self, name: str, certs: Certs, policy_path: Path, workdir: Path, extra=()):
        self.name = name
        self.certs = certs
        self.port = free_port()
        self.stderr_path = workdir / f"{name}.stderr"
        self.stdout_path = workdir / f"{name}.stdout"
        self.args = [str(BIN), "serve", "--policy", str(policy_path), "--tls-cert", str(certs.cert),
                     "--tls-key", str(certs.key), "--listen", f"127.0.0.1:{self.port}", *map(str, extra)]
        self.proc = None
        _SERVERS.append(self)

    def start(self, timeout: float = 15):
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
                                     env=getattr(self, "env", None))
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.stderr()}")
            try:
                st, _, _ = self.client().request("GET", "/readyz", timeout=2)
                if st == 200:
                    return self
                last = f"/readyz answered {st}"
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError(f"{self.name} not ready after {timeout}s ({last}):\n{self.stderr()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f:
                f.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr(self, tail: int = 25) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    def client(self, **kw) -> "Client":
        return Client(self.port, self.certs.ca, **kw)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for s in _SERVERS:
            if s.proc is not None:
                state = "running" if s.alive() else f"exited {s.proc.returncode}"
                rep.sections.append((f"webhook {s.name} stderr ({state}, last lines)", s.stderr()))


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    if not BIN.is_file() or not os.access(BIN, os.X_OK):
        pytest.fail(f"webhook binary not found at {BIN} (build it, or set WEBHOOK_BIN)", pytrace=False)
    return tmp_path_factory.mktemp("webhook")


@pytest.fixture(scope="session")
def certs(workdir) -> Certs:
    return make_certs(workdir / "certs")


@pytest.fixture(scope="session")
def server(certs, workdir):
    s = Server("main", certs, POLICY, workdir)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def small_server(certs, workdir):
    s = Server("small", certs, POLICY, workdir, extra=["--max-body", SMALL_MAX_BODY])
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture
def client(server) -> "Client":
    return server.client()


# ---------------------------------------------------------------------------
# HTTPS
# ---------------------------------------------------------------------------

def tls_context(cafile: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cafile))
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    return ctx


class SNIConnection(http.client.HTTPConnection):
    """HTTPS to 127.0.0.1:port, verifying the certificate for `sni`."""

    def __init__(self, port: int, ctx: ssl.SSLContext, sni: str, timeout: float = 10):
        super().__init__("127.0.0.1", port, timeout=timeout)
        self._ctx = ctx
        self._sni = sni

    def connect(self):
        super().connect()
        self.sock = self._ctx.wrap_socket(self.sock, server_hostname=self._sni)


class Client:
    def __init__(self, port: int, cafile: Path, sni: str = SNI):
        self.port = port
        self.ctx = tls_context(cafile)
        self.sni = sni

    def connection(self, timeout: float = 10) -> SNIConnection:
        return SNIConnection(self.port, self.ctx, self.sni, timeout=timeout)

    def request(self, method, path, body: bytes | None = None, headers=None, timeout: float = 10):
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def post_raw(self, body: bytes, path: str = MUTATE, content_type: str | None = "application/json", timeout: float = 10):
        headers = {"Content-Type": content_type} if content_type is not None else {}
        return self.request("POST", path, body, headers, timeout)

    def review(self, review: dict, path: str = MUTATE) -> dict:
        """POSTs an AdmissionReview, checks the envelope, returns the response
        AdmissionReview as parsed JSON."""
        st, hdrs, data = self.post_raw(json.dumps(review).encode(), path)
        return check_envelope(review, st, hdrs, data)

    def tls_socket(self, timeout: float = 10) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return self.ctx.wrap_socket(raw, server_hostname=self.sni)


def read_http_response(sock, timeout: float = 10):
    """Reads one HTTP/1.1 response from a raw socket: (status, headers, body)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a full response head: {buf[:200]!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = rest[:n]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                break
    else:
        body = rest
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        except (socket.timeout, ConnectionError, ssl.SSLError):
            pass
    return status, headers, body


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def check_envelope(sent: dict, status: int, headers: dict, data: bytes) -> dict:
    assert status == 200, f"expected 200, got {status}: {data[:500]!r}"
    assert headers.get("content-type", "").split(";")[0].strip() == "application/json", headers
    out = json.loads(data)
    assert out.get("apiVersion") == sent["apiVersion"], out
    assert out.get("kind") == "AdmissionReview", out
    r = out.get("response")
    assert isinstance(r, dict), out
    assert r.get("uid") == sent["request"]["uid"], (r.get("uid"), sent["request"]["uid"])
    assert isinstance(r.get("allowed"), bool), r
    if "patch" in r:
        assert r.get("patchType") == "JSONPatch", r
        ops = decode_patch(r)
        assert ops, "a patch is only sent when something changes, so it is never empty"
    else:
        assert "patchType" not in r, r
    if "warnings" in r:
        assert isinstance(r["warnings"], list) and all(isinstance(w, str) and w for w in r["warnings"]), r
    if not r["allowed"]:
        st = r.get("status")
        assert isinstance(st, dict) and st.get("code") == 403, r
        assert isinstance(st.get("message"), str) and st["message"], r
        assert "patch" not in r, r
    return out


def decode_patch(r: dict) -> list:
    ops = json.loads(base64.b64decode(r["patch"], validate=True))
    assert isinstance(ops, list), ops
    for op in ops:
        assert op.get("op") in ("add", "remove", "replace", "move", "copy", "test"), op
        assert isinstance(op.get("path"), str) and op["path"].startswith("/"), op
    return ops


def apply_response(obj: dict, r: dict) -> dict:
    """The object after the API server applied our patch (a real RFC 6902
    implementation; it refuses paths whose parent does not exist)."""
    if "patch" not in r:
        return copy.deepcopy(obj)
    return jsonpatch.apply_patch(obj, decode_patch(r), in_place=False)


def status_error(status: int, headers: dict, data: bytes, code: int) -> dict:
    assert status == code, f"expected {code}, got {status}: {data[:300]!r}"
    assert headers.get("content-type", "").split(";")[0].strip() == "application/json", headers
    body = json.loads(data)
    assert body.get("apiVersion") == "v1" and body.get("kind") == "Status", body
    assert body.get("status") == "Failure" and body.get("code") == code, body
    assert isinstance(body.get("reason"), str) and body["reason"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    return body


def assert_pod_matches(actual: dict, expected: dict, original: dict):
    """`actual` (server's patch applied) equals `expected` (the oracle), where
    env entries are compared by name (the position of new entries is free),
    while untouched entries must keep their relative order and no name may
    appear twice."""
    a = copy.deepcopy(actual)
    e = copy.deepcopy(expected)
    for ca, ce, co in zip(a["spec"]["containers"], e["spec"]["containers"], original["spec"]["containers"]):
        names = [x["name"] for x in ca.get("env", [])]
        assert len(names) == len(set(names)), f"duplicate env names in {ca['name']}: {names}"
        assert env_of(ca) == env_of(ce), _env_diff(ca, ce)
        changed = {n for n, v in env_of(ce).items() if env_of(co).get(n) != v}
        kept_a = [n for n in names if n not in changed]
        kept_o = [x["name"] for x in co.get("env", []) if x["name"] not in changed]
        assert kept_a == kept_o, f"untouched env entries of {ca['name']} moved: {kept_a} vs {kept_o}"
        ca.pop("env", None)
        ce.pop("env", None)
    assert len(a["spec"]["containers"]) == len(e["spec"]["containers"])
    assert a == e, _first_diff(a, e)


def _env_diff(ca, ce):
    a, e = env_of(ca), env_of(ce)
    lines = [f"env of container {ca['name']} differs:"]
    for n in sorted(set(a) | set(e)):
        if a.get(n) != e.get(n):
            lines.append(f"  {n}: got {a.get(n)!r}\n  {' ' * len(n)}  want {e.get(n)!r}")
    return "\n".join(lines)


def _first_diff(a, e, path=""):
    if type(a) is not type(e):
        return f"{path or '/'}: got {a!r:.200}, want {e!r:.200}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(e)):
            if k not in a:
                return f"{path}/{k}: missing, want {e[k]!r:.200}"
            if k not in e:
                return f"{path}/{k}: unexpected {a[k]!r:.200}"
            if a[k] != e[k]:
                return _first_diff(a[k], e[k], f"{path}/{k}")
    if isinstance(a, list):
        if len(a) != len(e):
            return f"{path}: {len(a)} items, want {len(e)}"
        for i, (x, y) in enumerate(zip(a, e)):
            if x != y:
                return _first_diff(x, y, f"{path}/{i}")
    return f"{path or '/'}: got {a!r:.200}, want {e!r:.200}"


def check_against_oracle(client: Client, review: dict, pol: dict | None = None) -> dict:
    """Posts `review`, checks the answer against what model.expect says, and,
    when the pod was patched, posts the patched pod again and checks that no
    second patch comes back. Returns the response AdmissionReview."""
    pol = pol or policy()
    exp = model.expect(review, pol)
    out = client.review(review)
    r = out["response"]
    obj = review["request"]["object"]
    assert r["allowed"] is exp.allowed, f"allowed={r['allowed']}, want {exp.allowed} ({exp.decision}): {r}"
    if not exp.allowed:
        msg = r["status"]["message"]
        for s in exp.message_contains:
            assert s in msg, f"denial message {msg!r} should name {s!r}"
        return out
    if exp.warnings is True:
        assert r.get("warnings"), f"expected warnings ({exp.decision}): {r}"
    if exp.warnings is False:
        assert not r.get("warnings"), f"expected no warnings ({exp.decision}): {r}"
    joined = "\n".join(r.get("warnings") or [])
    for s in exp.warn_contains:
        assert s in joined, f"a warning should mention {s!r}: {r.get('warnings')}"
    if not exp.changed:
        assert "patch" not in r, f"expected no patch ({exp.decision}), got {decode_patch(r)}"
        return out
    assert "patch" in r, f"expected a patch ({exp.decision}): {r}"
    patched = apply_response(obj, r)
    assert_pod_matches(patched, exp.pod, obj)
    again = client.review(with_object(review, patched))["response"]
    assert again["allowed"] is True, again
    assert "patch" not in again, f"second pass should give no patch, got {decode_patch(again)}"
    return out
