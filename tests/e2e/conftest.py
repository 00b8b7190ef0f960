"""End-to-end fixtures: a real etcd and kube-apiserver (built by
build-control-plane.sh), the webhook server registered through the deploy/
kustomize base, and test namespaces; everything driven through kubectl as
users do (helpers in harness.py).

The control plane is started once per session and stopped at the end,
also when a test fails or pytest is interrupted (cluster.py). If the control
plane cannot be built or started, every test fails with the reason: nothing
is skipped.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (AUDIT_POLICY, DEPLOY, HERE, NAMESPACE_CREATOR_ROLE, NAMESPACES, POD_STATUS_ROLE,  # noqa: E402
                     POLICY, TENANT_POD_ROLE, WEBHOOK_BIN, Registration, cp, is_policy_config, kubectl_objects, model,
                     wait_mutating, wait_validating)

_STATE: dict = {}


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


def _grant_label_list(wh: cp.Webhook) -> str:
    """The label keys the policy's selectors read, besides spark-identity.io/
    ones, as `check-policy` prints them for the namespace-grants webhook's
    matchConditions: "['env']"."""
    p = subprocess.run([str(wh.binary), "check-policy", str(POLICY)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    m = re.search(r"matchConditions \(deploy/base/webhook\.yaml\): k in (\[[^\]\n]*\])", p.stdout)
    assert m, f"check-policy does not print the matchConditions list:\n{p.stdout}"
    return m.group(1)


def _register(c: cp.ControlPlane, wh: cp.Webhook, workdir: Path) -> Registration:
    """deploy/ through a test overlay, as an admin would write one: the
    audit account (the Component deploy/audit/) beside the base, the
    ConfigMap carries the e2e policy, and the namespace-grants webhook's
    matchConditions list the label keys the e2e policy's selectors read (the
    list `check-policy` prints; deploy/ ships it empty). Then every webhook's
    clientConfig points at the loopback server (/mutate or /validate) with
    the caBundle of the `certs` command (instead of the in-cluster Service)."""
    base = kubectl_objects(c.kubectl("create", "--dry-run=client", "-o", "json", "-f", "-",
                                     input=c.kubectl("kustomize", DEPLOY).stdout).stdout)
    vconfigs = [o for o in base if o["kind"] == "ValidatingWebhookConfiguration" and not is_policy_config(o)]
    assert len(vconfigs) == 1, f"deploy/ should hold one ValidatingWebhookConfiguration for pods and namespaces, " \
        f"found {len(vconfigs)}"
    grants = [i for i, w in enumerate(vconfigs[0]["webhooks"]) if w["name"] == "namespace-grants.spark-identity.io"]
    assert len(grants) == 1, [w["name"] for w in vconfigs[0]["webhooks"]]
    (cond,) = vconfigs[0]["webhooks"][grants[0]]["matchConditions"]
    assert cond["expression"].count("k in []") == 2, cond["expression"]
    expression = cond["expression"].replace("k in []", "k in " + _grant_label_list(wh))
    patch = [{"op": "replace", "path": f"/webhooks/{grants[0]}/matchConditions/0/expression", "value": expression}]

    overlay = workdir / "overlay"
    overlay.mkdir()
    (overlay / "policy.yaml").write_text(POLICY.read_text())
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources:\n"
        f"  - {os.path.relpath(DEPLOY, overlay)}\n"
        "components:\n"
        f"  - {os.path.relpath(DEPLOY / 'audit', overlay)}\n"
        "configMapGenerator:\n"
        "  - name: spark-identity-policy\n"
        "    behavior: replace\n"
        "    files: [policy.yaml]\n"
        "patches:\n"
        "  - target: {kind: ValidatingWebhookConfiguration, name: %s}\n"
        "    patch: %s\n" % (vconfigs[0]["metadata"]["name"], json.dumps(json.dumps(patch))))
    rendered = c.kubectl("kustomize", overlay).stdout
    # kubectl is our YAML reader: the same parser `kubectl apply` uses.
    objects = kubectl_objects(c.kubectl("create", "--dry-run=client", "-o", "json", "-f", "-",
                                        input=rendered).stdout)
    policy_configs = [o for o in objects if is_policy_config(o)]
    assert len(policy_configs) == 1, "deploy/ should hold the policy ConfigMap's ValidatingWebhookConfiguration"
    for w in policy_configs[0]["webhooks"]:
        w["clientConfig"] = {"url": wh.validate_policy_url, "caBundle": wh.ca_bundle}
    for kind, url in (("MutatingWebhookConfiguration", wh.url), ("ValidatingWebhookConfiguration", wh.validate_url)):
        configs = [o for o in objects if o["kind"] == kind and not is_policy_config(o)]
        assert len(configs) == 1, f"deploy/ should hold one {kind}, found {len(configs)}"
        assert configs[0]["webhooks"], f"the {kind} in deploy/ has no webhooks"
        for w in configs[0]["webhooks"]:
            w["clientConfig"] = {"url": url, "caBundle": wh.ca_bundle}
    applied = workdir / "deploy-e2e.json"
    applied.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=1))
    c.kubectl("apply", "-f", applied)
    return Registration(c, objects)


def _user_rbac(c: cp.ControlPlane) -> None:
    """What the tenant users may do (cp.USERS). No kube-controller-manager
    runs, so the aggregated `edit` ClusterRole is empty here: TENANT_POD_ROLE
    is its rules for pods, for tests to bind in a namespace (RoleBinding to
    the group cp.TENANT_GROUP); POD_STATUS_ROLE writes pods/status (as a node
    or an operator may), bound by the tests that need it. The namespace
    creator (and the grantor) may create and edit namespaces, as
    multi-tenancy tools let tenants do."""
    items = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": TENANT_POD_ROLE},
         "rules": [{"apiGroups": [""], "resources": ["pods"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": POD_STATUS_ROLE},
         "rules": [{"apiGroups": [""], "resources": ["pods/status"], "verbs": ["get", "update", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": NAMESPACE_CREATOR_ROLE},
         "rules": [{"apiGroups": [""], "resources": ["namespaces"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": NAMESPACE_CREATOR_ROLE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAMESPACE_CREATOR_ROLE},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": cp.NS_CREATOR_GROUP}]},
    ]
    c.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


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


@pytest.fixture(scope="session")
def deployed(cluster, workdir):
    """The test namespaces, and deploy/ applied with the webhook's URL and
    certificates (the server is not started yet: its ClusterRole comes from
    deploy/, and it reads namespaces before it reports ready)."""
    if not os.access(WEBHOOK_BIN, os.X_OK):
        pytest.fail(f"webhook binary not found at {WEBHOOK_BIN} (build it, or set WEBHOOK_BIN)", pytrace=False)
    _namespaces(cluster)
    _user_rbac(cluster)
    # The server reads a copy of the e2e policy, in a directory of its own,
    # so that a test may rewrite it (the server reloads it) and restore it.
    served = workdir / "served-policy"
    served.mkdir()
    shutil.copyfile(POLICY, served / POLICY.name)
    wh = cp.Webhook(WEBHOOK_BIN, workdir, served / POLICY.name, workdir / "webhook-sa.kubeconfig")
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
def audit_kubeconfig(cluster, deployed, workdir) -> Path:
    """A kubeconfig with a token the API server minted (TokenRequest) for
    the audit account of deploy/audit/, as an admin runs `audit` with
    it: its ClusterRole must be enough."""
    token = cluster.kubectl("create", "token", cp.AUDIT_SERVICE_ACCOUNT, "-n", cp.WEBHOOK_NAMESPACE,
                            "--duration", "2h").stdout.strip()
    path = workdir / "audit-sa.kubeconfig"
    cluster.write_kubeconfig(path, cp.AUDIT_SA_USER, token)
    return path


@pytest.fixture(scope="session")
def registration(cluster, deployed, webhook) -> Registration:
    wait_mutating(cluster, True)
    wait_validating(cluster, "denied")
    return deployed[1]


@pytest.fixture(scope="session")
def kubectl(cluster, registration):
    """kubectl as the cluster admin, with the webhook registered."""
    return cluster.kubectl


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
