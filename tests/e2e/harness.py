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
