"""Fixtures of the chart's tests: helm (built once from its Go module by
build-helm.sh) and kubectl (for `kubectl kustomize`), and `template`, which
renders the chart with values files and --set flags. A tool that cannot be
built fails the tests that need it with the reason; nothing is skipped."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chart import CHART, NAMESPACE, RELEASE, VALUES, helm_bin, kubectl_bin, objects, run  # noqa: E402


@pytest.fixture(scope="session")
def helm() -> Path:
    try:
        return helm_bin()
    except RuntimeError as e:
        pytest.fail(f"helm could not be built: {e}", pytrace=False)


@pytest.fixture(scope="session")
def kubectl() -> Path:
    try:
        return kubectl_bin()
    except RuntimeError as e:
        pytest.fail(f"kubectl could not be built: {e}", pytrace=False)


@pytest.fixture(scope="session")
def kustomize(kubectl):
    def render(path: Path) -> list[dict]:
        return objects(run(kubectl, "kustomize", path).stdout)
    return render


@pytest.fixture(scope="session")
def template(helm):
    """template(*values_files, set=[...], set_file=[...], namespace=..., check=True):
    the objects (or, with check=False, the CompletedProcess)."""
    def render(*values: str, set: list[str] = (), set_file: list[str] = (), namespace: str = NAMESPACE,
               release: str = RELEASE, check: bool = True):
        args = ["template", release, CHART, "--namespace", namespace]
        for v in values:
            args += ["--values", VALUES / v]
        for s in set:
            args += ["--set", s]
        for s in set_file:
            args += ["--set-file", s]
        p = run(helm, *args, check=check)
        return objects(p.stdout) if check else p
    return render
