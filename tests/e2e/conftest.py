"""End-to-end fixtures: a real etcd and kube-apiserver (built by
build-control-plane.sh), the webhook server registered through the deploy/
kustomize base, test namespaces, and helpers that drive everything through
kubectl as users do.

The control plane is started once per session and stopped at the end,
also when a test fails or pytest is interrupted (cluster.py). If the control
plane cannot be built or started, every test fails with the reason: nothing
is skipped.

Python 3.11 standard library only (and model.py from the integration tests,
the oracle that computes what the policy does to a pod).
"""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import cluster as cp  # noqa: E402
import model  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
POLICY = HERE / "policy.yaml"
AUDIT_POLICY = HERE / "audit-policy.yaml"
DEPLOY = ROOT / "deploy"
BUILD_DIR = Path(os.environ.get("E2E_BUILD_DIR") or ROOT / "build")
WEBHOOK_BIN = Path(os.environ.get("WEBHOOK_BIN") or BUILD_DIR / "spark-identity-webhook")

# Namespaces the tests use; team-x has no entry in the policy.
NAMESPACES = ["team-a", "team-b", "team-c", "team-x"]

_STATE: dict = {}


# ---------------------------------------------------------------------------
# Pods as Spark posts them
# ---------------------------------------------------------------------------

def fixture_object(name: str) -> dict:
    """request.object of an AdmissionReview fixture, without what the API
    server adds on the way (Spark posts none of it): uid, resourceVersion,
    creationTimestamp, managedFields, status, the ServiceAccount admission
    plugin's kube-api-access volume and its mounts. Also without
    metadata.namespace: Spark posts to the namespace's URL."""
    review = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    pod = copy.deepcopy(review["request"]["object"])
    md = pod["metadata"]
    for k in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "namespace", "generation"):
        md.pop(k, None)
    pod.pop("status", None)
    spec = pod["spec"]
    api_access = {v["name"] for v in spec.get("volumes", []) if v["name"].startswith("kube-api-access-")}
    spec["volumes"] = [v for v in spec.get("volumes", []) if v["name"] not in api_access]
    if not spec["volumes"]:
        del spec["volumes"]
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        mounts = [m for m in c.get("volumeMounts", []) if m["name"] not in api_access]
        if mounts:
            c["volumeMounts"] = mounts
        else:
            c.pop("volumeMounts", None)
    return pod


def unique(pod: dict, suffix: str | None = None) -> dict:
    """A copy of pod with a name no other test uses."""
    p = copy.deepcopy(pod)
    tag = suffix or uuid.uuid4().hex[:6]
    md = p["metadata"]
    if "name" in md:
        base = md["name"]
        md["name"] = (base[:-len("-driver")] + f"-{tag}-driver") if base.endswith("-driver") else f"{base}-{tag}"
    return p


def spark_container(pod: dict) -> dict:
    return pod["spec"]["containers"][model.spark_container_index(pod)]


def env_of(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


def expected_spark_pod(pod: dict, namespace: str, policy: dict) -> dict:
    """The pod as the policy wants it (labels and Spark container env)."""
    rule = model.rule_for(policy, namespace)
    assert rule is not None, f"the e2e policy has no entry for {namespace}"
    want, _ = model.mutate_spark_pod(pod, rule)
    return want


# ---------------------------------------------------------------------------
# Session fixtures
# ---------------------------------------------------------------------------

def _bindir() -> Path:
    err = os.environ.get("E2E_BUILD_ERROR")
    if err:
        tail = ""
        try:
            tail = "\n".join(Path(err).read_text(errors="replace").splitlines()[-30:])
        except OSError:
            pass
        pytest.fail(f"the control plane (kube-apiserver, kubectl, etcd) could not be built; "
                    f"see {err}:\n{tail}", pytrace=False)
    given = os.environ.get("E2E_BIN_DIR")
    if given:
        return Path(given)
    # Run directly (not through run.sh): build or reuse it here.
    p = subprocess.run([str(HERE / "build-control-plane.sh")], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail("the control plane (kube-apiserver, kubectl, etcd) could not be built by "
                    f"tests/e2e/build-control-plane.sh (exit {p.returncode}):\n"
                    + "\n".join(p.stderr.splitlines()[-30:]), pytrace=False)
    return Path(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def policy() -> dict:
    return model.load_policy(POLICY)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def cluster(workdir):
    bindir = _bindir()
    c = cp.ControlPlane(bindir, workdir)
    _STATE["cluster"] = c
    try:
        try:
            c.start(AUDIT_POLICY)
        except RuntimeError as e:
            pytest.fail(f"the control plane did not start: {e}", pytrace=False)
        yield c
    finally:
        c.stop()


def _objects(text: str) -> list[dict]:
    """JSON documents as kubectl prints them (one or several, Lists
    flattened)."""
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = dec.raw_decode(text, i)
        out.extend(obj["items"] if obj.get("kind") == "List" else [obj])


class Registration:
    """What the suite applied from deploy/, and how to change it."""

    def __init__(self, cluster: cp.ControlPlane, objects: list[dict]):
        self.cluster = cluster
        self.objects = objects
        self.config = next(o for o in objects if o["kind"] == "MutatingWebhookConfiguration")
        self.name = self.config["metadata"]["name"]
        self.webhook_names = [w["name"] for w in self.config["webhooks"]]

    def set_failure_policy(self, value: str) -> None:
        ops = [{"op": "replace", "path": f"/webhooks/{i}/failurePolicy", "value": value}
               for i in range(len(self.webhook_names))]
        self.cluster.kubectl("patch", "mutatingwebhookconfiguration", self.name, "--type=json",
                             "-p", json.dumps(ops))

    def failure_policies(self) -> list[str]:
        got = self.cluster.kubectl_json("get", "mutatingwebhookconfiguration", self.name)
        return [w["failurePolicy"] for w in got["webhooks"]]

    def denial_re(self) -> str:
        names = "|".join(re.escape(n) for n in self.webhook_names)
        return rf'admission webhook "({names})" denied the request'


def _register(c: cp.ControlPlane, wh: cp.Webhook, workdir: Path) -> Registration:
    """deploy/ through a test overlay: the ConfigMap carries the e2e policy,
    and every webhook's clientConfig points at the loopback server with the
    caBundle of the `certs` command (instead of the in-cluster Service)."""
    overlay = workdir / "overlay"
    overlay.mkdir()
    (overlay / "policy.yaml").write_text(POLICY.read_text())
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources:\n"
        f"  - {os.path.relpath(DEPLOY, overlay)}\n"
        "configMapGenerator:\n"
        "  - name: spark-identity-policy\n"
        "    behavior: replace\n"
        "    files: [policy.yaml]\n")
    rendered = c.kubectl("kustomize", overlay).stdout
    # kubectl is our YAML reader: the same parser `kubectl apply` uses.
    objects = _objects(c.kubectl("create", "--dry-run=client", "-o", "json", "-f", "-", input=rendered).stdout)
    configs = [o for o in objects if o["kind"] == "MutatingWebhookConfiguration"]
    assert len(configs) == 1, f"deploy/ should hold one MutatingWebhookConfiguration, found {len(configs)}"
    assert configs[0]["webhooks"], "the MutatingWebhookConfiguration in deploy/ has no webhooks"
    for w in configs[0]["webhooks"]:
        w["clientConfig"] = {"url": wh.url, "caBundle": wh.ca_bundle}
    applied = workdir / "deploy-e2e.json"
    applied.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=1))
    c.kubectl("apply", "-f", applied)
    return Registration(c, objects)


def _namespaces(c: cp.ControlPlane) -> None:
    """Test namespaces with the ServiceAccounts pods name (no
    kube-controller-manager runs, so nothing creates `default`, and the
    ServiceAccount admission plugin refuses pods whose account is missing)."""
    items = []
    for ns in NAMESPACES:
        items.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for sa in ("default", "spark"):
            items.append({"apiVersion": "v1", "kind": "ServiceAccount",
                          "metadata": {"name": sa, "namespace": ns}})
    c.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def wait_mutating(c: cp.ControlPlane, want: bool, timeout: float = 30) -> None:
    """Waits until the API server (whose webhook configuration follows a
    watch) mutates a Spark driver in team-a (want) or admits it unchanged
    (not want). Probes with --dry-run=server: nothing is stored."""
    pod = unique(fixture_object("spark35-driver.json"), "probe")
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        p = c.kubectl("create", "--dry-run=server", "-o", "json", "-n", "team-a", "-f", "-",
                      input=json.dumps(pod), check=False)
        if p.returncode == 0:
            labels = json.loads(p.stdout)["metadata"].get("labels", {})
            if (model.IDENTITY_LABEL in labels) == want:
                return
            last = f"labels {labels}"
        else:
            last = p.stderr.strip()
        time.sleep(0.25)
    raise AssertionError(f"the API server did not {'start' if want else 'stop'} calling the webhook "
                         f"within {timeout:.0f}s (last: {last})")


@pytest.fixture(scope="session")
def deployed(cluster, workdir):
    """The test namespaces, and deploy/ applied with the webhook's URL and
    certificates (the server is not started yet: its ClusterRole comes from
    deploy/, and it reads namespaces before it reports ready)."""
    if not os.access(WEBHOOK_BIN, os.X_OK):
        pytest.fail(f"webhook binary not found at {WEBHOOK_BIN} (build it, or set WEBHOOK_BIN)", pytrace=False)
    _namespaces(cluster)
    wh = cp.Webhook(WEBHOOK_BIN, workdir, POLICY, workdir / "webhook-sa.kubeconfig")
    wh.make_certs()
    reg = _register(cluster, wh, workdir)
    _STATE["registration"] = reg
    return wh, reg


@pytest.fixture(scope="session")
def webhook(cluster, deployed):
    """The server, running with a token the API server minted for the
    webhook's ServiceAccount (TokenRequest): what a pod of the Deployment
    would have, so the ClusterRole of deploy/ must be enough."""
    wh, _ = deployed
    token = cluster.kubectl("create", "token", cp.WEBHOOK_SERVICE, "-n", cp.WEBHOOK_NAMESPACE,
                            "--duration", "2h").stdout.strip()
    cluster.write_kubeconfig(wh.kubeconfig, cp.WEBHOOK_SA_USER, token)
    _STATE["webhook"] = wh
    try:
        try:
            wh.start()
        except RuntimeError as e:
            pytest.fail(f"the webhook server did not start: {e}", pytrace=False)
        yield wh
    finally:
        wh.stop()


@pytest.fixture(scope="session")
def registration(cluster, deployed, webhook) -> Registration:
    wait_mutating(cluster, True)
    return deployed[1]


@pytest.fixture(scope="session")
def kubectl(cluster, registration):
    """kubectl as the cluster admin, with the webhook registered."""
    return cluster.kubectl


# ---------------------------------------------------------------------------
# Pod helpers
# ---------------------------------------------------------------------------

def create_pod(c: cp.ControlPlane, pod: dict, namespace: str, *extra: str,
               check: bool = True) -> subprocess.CompletedProcess:
    """`kubectl create -f -` with the pod, as a user or Spark would post it."""
    return c.kubectl("create", "-n", namespace, "-f", "-", *extra, input=json.dumps(pod), check=check)


def get_pod(c: cp.ControlPlane, namespace: str, name: str) -> dict:
    return c.kubectl_json("get", "pod", "-n", namespace, name)


def warnings_of(p: subprocess.CompletedProcess) -> list[str]:
    """The `Warning: ...` lines kubectl printed for the API server's
    warning headers."""
    return [line[len("Warning: "):] for line in p.stderr.splitlines() if line.startswith("Warning: ")]


# ---------------------------------------------------------------------------
# On failure: the end of every log
# ---------------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    c = _STATE.get("cluster")
    wh = _STATE.get("webhook")
    procs = []
    if wh is not None and wh.proc is not None:
        procs.append((wh.proc, 20))
    if c is not None:
        procs += [(p, n) for p, n in ((c.apiserver, 12), (c.etcd, 5)) if p is not None]
    for p, n in procs:
        rep.sections.append((f"{p.name} ({p.state()}; last lines of {p.log})", p.tail(n)))
