"""What the end-to-end tests share: paths, pods as Spark posts them, the
oracle's expectations, kubectl helpers, and the webhook registration.
(Fixtures are in conftest.py; test modules import from here.)

Python 3.11 standard library only, and model.py from the integration tests,
the oracle that computes what the policy does to a pod.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
import cluster as cp  # noqa: E402


def _load_model():
    """tests/integration/model.py, by path: putting tests/integration on
    sys.path would also make its conftest.py importable as `conftest`."""
    spec = importlib.util.spec_from_file_location("model", ROOT / "tests" / "integration" / "model.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["model"] = mod
    spec.loader.exec_module(mod)
    return mod


model = sys.modules.get("model") or _load_model()

FIXTURES = ROOT / "tests" / "fixtures"
POLICY = HERE / "policy.yaml"
AUDIT_POLICY = HERE / "audit-policy.yaml"
DEPLOY = ROOT / "deploy"
BUILD_DIR = Path(os.environ.get("E2E_BUILD_DIR") or ROOT / "build")
WEBHOOK_BIN = Path(os.environ.get("WEBHOOK_BIN") or BUILD_DIR / "spark-identity-webhook")

# Namespaces the tests use; team-x has no entry in the policy.
NAMESPACES = ["team-a", "team-b", "team-c", "team-x"]

# ClusterRoles for the tenant users of cluster.py (made by conftest.py).
TENANT_POD_ROLE = "e2e-tenant-pods"            # `edit`'s rules for pods: bind it in a namespace
POD_STATUS_ROLE = "e2e-pod-status-writer"      # pods/status update and patch
NAMESPACE_CREATOR_ROLE = "e2e-namespace-creator"  # bound to cp.NS_CREATOR_GROUP


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


def expected_spark_pod(pod: dict, namespace: str, policy: dict, labels: dict | None = None,
                       annotations: dict | None = None) -> dict:
    """The pod as the policy wants it (labels and Spark container env), for a
    namespace with these labels and annotations."""
    rule = model.rule_for(policy, namespace, labels, annotations)
    assert rule is not None, f"the e2e policy has no entry for {namespace}"
    want, _ = model.mutate_spark_pod(pod, rule)
    return want


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


# ---------------------------------------------------------------------------
# The registration from deploy/
# ---------------------------------------------------------------------------

def kubectl_objects(text: str) -> list[dict]:
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


GRANT_PROBE_NAMESPACE = "e2e-grant-probe"
GRANT_PROBE_ANNOTATION = "spark-identity.io/e2e-probe"


def grant_probe(c: cp.ControlPlane) -> str:
    """Whether the API server calls the namespace-grants validating webhook:
    a namespace carrying a grant key (a spark-identity.io/ annotation),
    created with --dry-run=server by the namespace creator, who is no
    grantor. 'denied' (the webhook answered), 'failed' (failurePolicy Fail
    and no answer) or 'allowed' (not called, or Ignore and no answer)."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": GRANT_PROBE_NAMESPACE, "annotations": {GRANT_PROBE_ANNOTATION: "probe"}}}
    p = c.kubectl_as(cp.NS_CREATOR_USER, "create", "--dry-run=server", "-f", "-", input=json.dumps(ns),
                     check=False)
    if p.returncode == 0:
        return "allowed"
    if 'admission webhook "namespace-grants.spark-identity.io" denied the request' in p.stderr:
        return "denied"
    if 'failed calling webhook "namespace-grants.spark-identity.io"' in p.stderr:
        return "failed"
    raise AssertionError(f"the grant probe failed otherwise: {p.stderr}")


def wait_validating(c: cp.ControlPlane, want: set[str] | str, timeout: float = 30) -> str:
    """Waits until grant_probe() answers one of want (the validating
    configuration follows a watch, like the mutating one)."""
    want = {want} if isinstance(want, str) else set(want)
    deadline = time.monotonic() + timeout
    got = grant_probe(c)
    while got not in want and time.monotonic() < deadline:
        time.sleep(0.25)
        got = grant_probe(c)
    assert got in want, (f"the API server's namespace-grants webhook answers {got!r}, want {sorted(want)} "
                         f"(after {timeout:.0f}s)")
    return got


def is_policy_config(o: dict) -> bool:
    """Whether `o` is the policy ConfigMap's ValidatingWebhookConfiguration
    (deploy/base/policy-webhook.yaml: /validate-policy, failurePolicy
    Ignore), which guards the webhook's own ConfigMap, not pods or
    namespaces."""
    if o.get("kind") != "ValidatingWebhookConfiguration":
        return False
    urls = [w["clientConfig"].get("url") or w["clientConfig"].get("service", {}).get("path", "")
            for w in o["webhooks"]]
    return bool(urls) and all(u.endswith("/validate-policy") for u in urls)


class Registration:
    """What the suite applied from deploy/, and how to change it: the
    MutatingWebhookConfiguration (`config`, `name`) and the
    ValidatingWebhookConfiguration for pods and namespaces
    (`validating_config`, `validating_name`). `webhook_names` lists every
    webhook of both, mutating first (a name may appear in both:
    identity-claims runs on /mutate and on /validate). The policy
    ConfigMap's own configuration (`policy_config`) is apart: it is never
    Fail, and judges no pod."""

    KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")

    def __init__(self, cluster: cp.ControlPlane, objects: list[dict]):
        self.cluster = cluster
        self.objects = objects
        self.config = next(o for o in objects if o["kind"] == "MutatingWebhookConfiguration")
        self.name = self.config["metadata"]["name"]
        self.validating_config = next(o for o in objects
                                      if o["kind"] == "ValidatingWebhookConfiguration" and not is_policy_config(o))
        self.policy_config = next(o for o in objects if is_policy_config(o))
        self.validating_name = self.validating_config["metadata"]["name"]
        self.mutating_webhook_names = [w["name"] for w in self.config["webhooks"]]
        self.validating_webhook_names = [w["name"] for w in self.validating_config["webhooks"]]
        self.webhook_names = self.mutating_webhook_names + self.validating_webhook_names

    def _configs(self):
        return (("mutatingwebhookconfiguration", self.name, len(self.mutating_webhook_names)),
                ("validatingwebhookconfiguration", self.validating_name, len(self.validating_webhook_names)))

    def set_failure_policy(self, value: str) -> None:
        """Every webhook of both configurations. Then waits until the API
        server follows the validating one where that can be seen (while the
        server is down: Fail refuses a grant, Ignore admits it); the mutating
        one, as before, with wait_mutating()."""
        for kind, name, n in self._configs():
            ops = [{"op": "replace", "path": f"/webhooks/{i}/failurePolicy", "value": value} for i in range(n)]
            self.cluster.kubectl("patch", kind, name, "--type=json", "-p", json.dumps(ops))
        wait_validating(self.cluster, {"denied", "failed" if value == "Fail" else "allowed"})

    def failure_policies(self) -> list[str]:
        """In the order of webhook_names."""
        out = []
        for kind, name, _ in self._configs():
            got = self.cluster.kubectl_json("get", kind, name)
            out += [w["failurePolicy"] for w in got["webhooks"]]
        return out

    def denial_re(self) -> str:
        names = "|".join(re.escape(n) for n in dict.fromkeys(self.webhook_names))
        return rf'admission webhook "({names})" denied the request'


def mutating_webhook_config(name: str, webhook: str, url: str, ca_bundle: str, object_selector: dict,
                            namespace_selector: dict | None = None) -> dict:
    """A MutatingWebhookConfiguration of one webhook on pod CREATE that a test
    serves itself (at `url`, its certificate under `ca_bundle`, base64 PEM):
    failurePolicy Fail, never reinvoked."""
    hook = {
        "name": webhook, "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
        "timeoutSeconds": 5, "reinvocationPolicy": "Never",
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                   "resources": ["pods"], "scope": "Namespaced"}],
        "objectSelector": object_selector,
        "clientConfig": {"url": url, "caBundle": ca_bundle},
    }
    if namespace_selector is not None:
        hook["namespaceSelector"] = namespace_selector
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name}, "webhooks": [hook]}
