"""What the chart's tests share: the paths, helm and kubectl as the tests
run them, and the objects `helm template` and `kubectl kustomize` print,
read with PyYAML. Python 3.11 standard library, PyYAML and pytest.

helm is the one tests/helm/build-helm.sh builds from its Go module (HELM_BIN
overrides it); kubectl (for `kubectl kustomize`) the one
tests/e2e/build-control-plane.sh builds (KUBECTL, or E2E_BIN_DIR/kubectl).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CHART = ROOT / "deploy" / "helm" / "spark-identity-webhook"
DEPLOY = ROOT / "deploy"
VALUES = HERE / "values"
BUILD_DIR = Path(os.environ.get("HELM_BUILD_DIR") or ROOT / "build")

NAMESPACE = "spark-identity-system"   # deploy/base's
RELEASE = "spark-identity-webhook"
# What helm adds to every object's labels, besides deploy/base's.
HELM_LABELS = ("app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "app.kubernetes.io/version",
               "helm.sh/chart")


def _tool(env: str, build: list[str]) -> Path:
    given = os.environ.get(env)
    if given:
        return Path(given)
    p = subprocess.run(build, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{build[0]} failed ({p.returncode}):\n" + "\n".join(p.stderr.splitlines()[-20:]))
    return Path(p.stdout.strip().splitlines()[-1])


def helm_bin() -> Path:
    return _tool("HELM_BIN", [str(HERE / "build-helm.sh"), str(BUILD_DIR)])


def kubectl_bin() -> Path:
    d = os.environ.get("E2E_BIN_DIR")
    if d and not os.environ.get("KUBECTL"):
        return Path(d) / "kubectl"
    out = _tool("KUBECTL", [str(ROOT / "tests" / "e2e" / "build-control-plane.sh")])
    return out if out.name == "kubectl" else out / "kubectl"


def run(binary: Path, *args, check: bool = True, env: dict | None = None, timeout: float = 120,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       env=env, cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"{binary.name} {' '.join(map(str, args))} failed ({p.returncode}):\n"
                             f"{p.stderr}{p.stdout[-2000:]}")
    return p


def objects(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_key(objs: list[dict]) -> dict[tuple[str, str], dict]:
    out = {}
    for o in objs:
        key = (o["kind"], o["metadata"]["name"])
        assert key not in out, f"two objects {key}"
        out[key] = o
    return out


def normalized(o: dict) -> dict:
    """o without what helm adds to deploy/base's objects: its own labels
    (app.kubernetes.io/instance, managed-by, version, helm.sh/chart) and the
    containers' imagePullPolicy (a value of the chart)."""
    o = yaml.safe_load(yaml.safe_dump(o))
    labels = o["metadata"].get("labels")
    if labels is not None:
        for k in HELM_LABELS:
            labels.pop(k, None)
        if not labels:
            del o["metadata"]["labels"]
    for spec in _pod_specs(o):
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            c.pop("imagePullPolicy", None)
    return o


def _pod_specs(o: dict) -> list[dict]:
    spec = o.get("spec") or {}
    if o["kind"] == "Deployment":
        return [spec["template"]["spec"]]
    if o["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    return []
