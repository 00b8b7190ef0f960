"""A real control plane for the end-to-end tests: etcd and kube-apiserver,
built from their Go modules by build-control-plane.sh, started on loopback
ports with certificates made here, and stopped again even when a test fails.
Also the webhook server itself, and kubectl as users run it.

Python 3.11 standard library and the openssl command only.
"""
from __future__ import annotations

import atexit
import base64
import ctypes
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ADMIN_USER = "e2e-admin"
WEBHOOK_NAMESPACE = "spark-identity-system"
WEBHOOK_SERVICE = "spark-identity-webhook"
WEBHOOK_SA_USER = f"system:serviceaccount:{WEBHOOK_NAMESPACE}:{WEBHOOK_SERVICE}"
# The account audits run as (deploy/audit/), beside the serving one.
AUDIT_SERVICE_ACCOUNT = "spark-identity-audit"
AUDIT_SA_USER = f"system:serviceaccount:{WEBHOOK_NAMESPACE}:{AUDIT_SERVICE_ACCOUNT}"
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # the first address of SERVICE_CIDR: the `kubernetes` Service

# Users besides the admin, authenticated by the same token file, with no
# rights until a test's RBAC gives them some (conftest.py): a tenant who
# edits pods in its namespaces, a tenant who may create and edit namespaces
# (as multi-tenancy tools let tenants do), and a grantor of the e2e policy
# (`grantors` in policy.yaml) who is not in system:masters.
TENANT_USER = "e2e-tenant"
TENANT_GROUP = "e2e-tenants"
NS_CREATOR_USER = "e2e-ns-creator"
NS_CREATOR_GROUP = "e2e-namespace-creators"
GRANTOR_USER = "e2e-grantor"
GRANTOR_GROUP = "e2e-platform"
USERS = {TENANT_USER: [TENANT_GROUP], NS_CREATOR_USER: [NS_CREATOR_GROUP, TENANT_GROUP],
         GRANTOR_USER: [GRANTOR_GROUP, NS_CREATOR_GROUP]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args: str, cwd: Path) -> None:
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")


# ---------------------------------------------------------------------------
# Processes: each in its own process group, killed with its parent if pytest
# dies, and stopped at exit whatever happened.
# ---------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_RUNNING: list["Proc"] = []


def stop_all() -> None:
    for p in reversed(list(_RUNNING)):
        p.stop()


atexit.register(stop_all)


class Proc:
    def __init__(self, name: str, args: list[str], log: Path, env: dict | None = None):
        self.name = name
        self.args = [str(a) for a in args]
        self.log = log
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Proc":
        self._logf = open(self.log, "ab")
        self._logf.write(f"--- {' '.join(self.args)}\n".encode())
        self._logf.flush()
        self.proc = subprocess.Popen(self.args, stdout=self._logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        _RUNNING.append(self)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        if self in _RUNNING:
            _RUNNING.remove(self)
        self._logf.close()

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def state(self) -> str:
        if self.proc is None:
            return "not started"
        rc = self.proc.poll()
        return "running" if rc is None else f"exited {rc}"

    def wait_until(self, ready, what: str, timeout: float) -> None:
        """Polls ready() (True when ready; else False or why not; it may
        raise OSError while not) until it holds, the process dies, or the
        time runs out."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} {self.state()} before {what}:\n{self.tail()}")
            try:
                answer = ready()
                if answer is True:
                    return
                last = answer or "not ready"
            except (OSError, ssl.SSLError) as e:
                last = repr(e)
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not {what} after {timeout:.0f}s ({last}):\n{self.tail()}")


# ---------------------------------------------------------------------------
# The control plane
# ---------------------------------------------------------------------------

class ControlPlane:
    def __init__(self, bindir: Path, workdir: Path):
        self.bindir = bindir
        self.dir = workdir
        self.etcd_bin = bindir / "etcd"
        self.apiserver_bin = bindir / "kube-apiserver"
        self.kubectl_bin = bindir / "kubectl"
        self.pki = workdir / "pki"
        self.audit_log = workdir / "audit.log"
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.admin_token = secrets.token_hex(24)
        self.user_tokens = {u: secrets.token_hex(24) for u in USERS}
        self.etcd: Proc | None = None
        self.apiserver: Proc | None = None
        self.port = 0
        # The API server presents a client certificate to a webhook on this
        # port (its admission configuration names it): test_16 serves one
        # there with --client-ca.
        self.mtls_port = free_port()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # -- certificates -------------------------------------------------------

    def _make_pki(self) -> None:
        d = self.pki
        d.mkdir(parents=True, exist_ok=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                "-subj", "/CN=spark-identity-e2e-ca", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        sans = ",".join(["IP:127.0.0.1", f"IP:{SERVICE_IP}", "DNS:localhost", "DNS:kubernetes",
                         "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
                         "DNS:kubernetes.default.svc.cluster.local"])
        openssl("req", "-x509", *ec, "-CA", "ca.crt", "-CAkey", "ca.key", "-keyout", "apiserver.key",
                "-out", "apiserver.crt", "-days", "2", "-subj", "/CN=kube-apiserver",
                "-addext", f"subjectAltName={sans}", "-addext", "basicConstraints=critical,CA:FALSE",
                "-addext", "keyUsage=critical,digitalSignature", "-addext", "extendedKeyUsage=serverAuth",
                cwd=d)
        # Service-account tokens are signed with this pair (RSA: what kubeadm uses).
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key", cwd=d)
        openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
        (d / "tokens.csv").write_text(
            f'{self.admin_token},{ADMIN_USER},e2e-admin-uid,"system:masters"\n'
            + "".join(f'{self.user_tokens[u]},{u},{u}-uid,"{",".join(groups)}"\n' for u, groups in USERS.items()))
        os.chmod(d / "tokens.csv", 0o600)
        # The API server's client identity towards webhooks (mutual TLS), from
        # a CA of its own, as an admin would make it.
        openssl("req", "-x509", *ec, "-keyout", "webhook-clients-ca.key", "-out", "webhook-clients-ca.crt",
                "-days", "2", "-subj", "/CN=spark-identity-e2e-webhook-clients",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", cwd=d)
        openssl("req", "-x509", *ec, "-CA", "webhook-clients-ca.crt", "-CAkey", "webhook-clients-ca.key",
                "-keyout", "apiserver-webhook-client.key", "-out", "apiserver-webhook-client.crt", "-days", "2",
                "-subj", "/CN=kube-apiserver-webhook-client", "-addext", "basicConstraints=critical,CA:FALSE",
                "-addext", "keyUsage=critical,digitalSignature", "-addext", "extendedKeyUsage=clientAuth", cwd=d)
        # users[].name is the webhook's host:port (a URL webhook) or service.namespace.svc.
        (d / "webhook-client.kubeconfig").write_text(
            "apiVersion: v1\nkind: Config\nusers:\n"
            f"- name: '127.0.0.1:{self.mtls_port}'\n"
            "  user:\n"
            f"    client-certificate: {d / 'apiserver-webhook-client.crt'}\n"
            f"    client-key: {d / 'apiserver-webhook-client.key'}\n")
        plugin = ("  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    kind: WebhookAdmissionConfiguration\n"
                  f"    kubeConfigFile: {d / 'webhook-client.kubeconfig'}\n")
        (d / "admission.yaml").write_text(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n"
            "- name: ValidatingAdmissionWebhook\n" + plugin + "- name: MutatingAdmissionWebhook\n" + plugin)

    def write_kubeconfig(self, path: Path, user: str, token: str) -> None:
        path.write_text(
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            "- name: e2e\n"
            "  cluster:\n"
            f"    server: {self.url}\n"
            f"    certificate-authority: {self.pki / 'ca.crt'}\n"
            "users:\n"
            f"- name: {user}\n"
            "  user:\n"
            f"    token: {token}\n"
            "contexts:\n"
            "- name: e2e\n"
            "  context:\n"
            "    cluster: e2e\n"
            f"    user: {user}\n"
            "current-context: e2e\n")
        os.chmod(path, 0o600)

    # -- processes ------------------------------------------------------------

    def start(self, audit_policy: Path) -> "ControlPlane":
        for b in (self.etcd_bin, self.apiserver_bin, self.kubectl_bin):
            if not os.access(b, os.X_OK):
                raise RuntimeError(f"{b} is missing: run tests/e2e/build-control-plane.sh")
        self._make_pki()

        # etcd: plain http on loopback only, no fsync (a throwaway test store).
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        self.etcd = Proc("etcd", [
            self.etcd_bin, "--name", "e2e", "--data-dir", self.dir / "etcd",
            "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"e2e=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ], self.dir / "etcd.log").start()
        self.etcd.wait_until(self._etcd_healthy, "healthy", 30)

        self.port = free_port()
        p = self.pki
        self.apiserver = Proc("kube-apiserver", [
            self.apiserver_bin,
            "--etcd-servers", self.etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(self.port),
            "--tls-cert-file", p / "apiserver.crt", "--tls-private-key-file", p / "apiserver.key",
            "--client-ca-file", p / "ca.crt",
            "--authorization-mode", "RBAC",
            "--token-auth-file", p / "tokens.csv",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", p / "sa.pub",
            "--service-account-signing-key-file", p / "sa.key",
            "--service-cluster-ip-range", SERVICE_CIDR,
            # No Endpoints for the `kubernetes` Service: they may not be loopback.
            "--endpoint-reconciler-type", "none",
            "--audit-policy-file", audit_policy, "--audit-log-path", self.audit_log,
            "--audit-log-format", "json",
            # The audit backend writes in batches by default; the tests read
            # the file right after a request.
            "--audit-log-mode", "blocking",
            "--admission-control-config-file", p / "admission.yaml",
            "--profiling=false",
            "--v", "1",
        ], self.dir / "kube-apiserver.log").start()
        self.apiserver.wait_until(self._apiserver_ready, "ready (/readyz)", 120)

        self.write_kubeconfig(self.kubeconfig, ADMIN_USER, self.admin_token)
        for u in USERS:
            self.write_kubeconfig(self.kubeconfig_of(u), u, self.user_tokens[u])
        return self

    def kubeconfig_of(self, user: str) -> Path:
        """The kubeconfig of one of USERS (written at start)."""
        assert user in USERS, user
        return self.dir / f"{user}.kubeconfig"

    def kubectl_as(self, user: str, *args, **kw) -> subprocess.CompletedProcess:
        """kubectl as one of USERS."""
        return self.kubectl(*args, kubeconfig=self.kubeconfig_of(user), **kw)

    def stop(self) -> None:
        if self.apiserver:
            self.apiserver.stop()
        if self.etcd:
            self.etcd.stop()

    def _etcd_healthy(self) -> bool:
        with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as r:
            return json.loads(r.read()).get("health") == "true"

    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki / "ca.crt"))

    def get(self, path: str, timeout: float = 10) -> tuple[int, str]:
        """GET on the API server as the admin (/readyz, /metrics, ...)."""
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.admin_token}"})
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=timeout) as r:
                return r.status, r.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", errors="replace")

    def request(self, method: str, path: str, body: dict | None = None,
                timeout: float = 30) -> tuple[int, dict]:
        """One API call as the admin, JSON in and out."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.admin_token}", "Content-Type": "application/json",
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def _apiserver_ready(self) -> bool:
        status, _ = self.get("/readyz", timeout=3)
        return status == 200

    # -- kubectl ----------------------------------------------------------------

    def kubectl(self, *args, input: str | None = None, check: bool = True,
                kubeconfig: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(self.kubectl_bin), "--kubeconfig", str(kubeconfig or self.kubeconfig),
               "--cache-dir", str(self.dir / "kubectl-cache"), *map(str, args)]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(map(str, args))} failed ({p.returncode}):\n"
                                 f"{p.stderr}{p.stdout[-2000:]}")
        return p

    def kubectl_json(self, *args, **kw) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json", **kw).stdout)

    def version(self) -> str:
        status, body = self.get("/version")
        return json.loads(body).get("gitVersion", "?") if status == 200 else "?"

    def audit_events(self) -> list[dict]:
        out = []
        for line in self.audit_log.read_text(errors="replace").splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out


# ---------------------------------------------------------------------------
# The webhook server under test
# ---------------------------------------------------------------------------

class Webhook:
    def __init__(self, binary: Path, workdir: Path, policy: Path, kubeconfig: Path | None):
        self.binary = binary
        self.dir = workdir
        self.policy = policy
        self.kubeconfig = kubeconfig
        self.certs = workdir / "webhook-certs"
        self.port = free_port()
        self.proc: Proc | None = None
        self.ca_bundle = ""

    @property
    def url(self) -> str:
        """The mutating webhooks' URL."""
        return f"https://127.0.0.1:{self.port}/mutate"

    @property
    def validate_url(self) -> str:
        """The validating webhooks' URL."""
        return f"https://127.0.0.1:{self.port}/validate"

    @property
    def validate_policy_url(self) -> str:
        """The policy ConfigMap's validating webhook's URL."""
        return f"https://127.0.0.1:{self.port}/validate-policy"

    def make_certs(self) -> str:
        """Certificates from the binary's own `certs` command; returns the
        base64 caBundle it prints."""
        p = subprocess.run([str(self.binary), "certs", "--service", WEBHOOK_SERVICE, "--namespace",
                            WEBHOOK_NAMESPACE, "--ip", "127.0.0.1", "--out", str(self.certs),
                            "--print-ca-bundle"], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"{self.binary.name} certs failed ({p.returncode}):\n{p.stderr}")
        self.ca_bundle = p.stdout.strip()
        pem = base64.b64decode(self.ca_bundle, validate=True).decode()
        assert pem == (self.certs / "ca.crt").read_text(), "--print-ca-bundle is not ca.crt"
        return self.ca_bundle

    def start(self) -> "Webhook":
        args = [self.binary, "serve", "--policy", self.policy, "--tls-cert", self.certs / "tls.crt",
                "--tls-key", self.certs / "tls.key", "--listen", f"127.0.0.1:{self.port}"]
        if self.kubeconfig is not None:
            args += ["--kubeconfig", self.kubeconfig]
        self.proc = Proc("spark-identity-webhook", args, self.dir / "webhook.log").start()
        self.proc.wait_until(self._ready, "ready (/readyz)", 30)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def readyz(self) -> tuple[int, str]:
        """/readyz: its status and body."""
        ctx = ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        req = urllib.request.Request(f"https://127.0.0.1:{self.port}/readyz")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as e:   # not listening yet
            return 0, json.dumps({"reason": str(e)})

    def _ready(self) -> bool | str:
        ctx = ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        req = urllib.request.Request(f"https://127.0.0.1:{self.port}/readyz")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=2) as r:
                return r.status == 200
        except urllib.error.HTTPError as e:
            return f"/readyz answered {e.code}: {e.read()[:300].decode(errors='replace')}"

    def decisions(self) -> list[dict]:
        """The server's JSON decision lines so far."""
        out = []
        if self.proc is None:
            return out
        for line in self.proc.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


# ---------------------------------------------------------------------------
# The API server's Prometheus metrics
# ---------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict, float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def histogram(samples, name: str, match) -> tuple[list[tuple[float, float]], float, float]:
    """The cumulative buckets [(le, count)] summed over every series of
    histogram `name` whose labels satisfy match(labels), and its sum and
    count."""
    buckets: dict[float, float] = {}
    total_sum = total_count = 0.0
    for n, labels, v in samples:
        if not match(labels):
            continue
        if n == name + "_bucket":
            le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
            buckets[le] = buckets.get(le, 0.0) + v
        elif n == name + "_sum":
            total_sum += v
        elif n == name + "_count":
            total_count += v
    return sorted(buckets.items()), total_sum, total_count


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket
    that holds the q-th observation; the highest finite bound if that is the
    +Inf bucket."""
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound
