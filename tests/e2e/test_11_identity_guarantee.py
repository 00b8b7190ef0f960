"""The guarantee (issue 11): a pod carries an Azure identity only where the
policy grants it to the pod's namespace, on every path, through the real API
server and as the users who would try it:

- a tenant (`e2e-tenant`, with `edit`'s rights on pods) cannot add or change
  the aadpodidbinding label of a stored pod by `kubectl label`, a merge
  patch, client-side or server-side apply, replace, or the pods/status
  subresource (with the rights a node or an operator has there); the
  validating webhook refuses it and logs it. Updates that leave the label as
  it was, and removing it, are allowed; ordinary updates never reach the
  webhook (CEL matchConditions), and the server itself allows an unchanged
  label even when such a request does reach it;
- a mutating webhook that runs after ours cannot add a foreign identity: the
  validating webhook sees the pod as it will be stored;
- a tenant who may create namespaces (`e2e-ns-creator`) cannot give one an
  identity by annotation or by a label a selector reads, nor change or
  remove what a grantor set; its ordinary namespace changes pass without
  reaching the webhook (and the server allows them when they do); a grantor
  can (`e2e-grantor`, listed in the policy's `grantors`, and
  system:masters); an identity that an entry or a selector names, or one
  not in delegableIdentities, cannot be delegated even by a grantor;
- the owner's mode protects an identity: a claimer in audit or off mode is
  refused an enforced identity;
- `unlistedIdentities: deny`, loaded by the running server from a rewritten
  policy file, refuses identities the policy names nowhere.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import http.server
import json
import os
import re
import ssl
import threading
import time
import uuid
from pathlib import Path

import pytest

from harness import (NAMESPACE_CREATOR_ROLE, POD_STATUS_ROLE, TENANT_POD_ROLE, create_pod, fixture_object,
                     get_pod, model, mutating_webhook_config, unique, warnings_of)
import cluster as cp

LABEL = model.IDENTITY_LABEL
TENANT = cp.TENANT_USER
NS_CREATOR = cp.NS_CREATOR_USER
GRANTOR = cp.GRANTOR_USER

FOREIGN = "sparkaks"          # granted by name to team-a only (enforce)
B_IDENTITY = "team-b-spark"   # team-b's own identity
DELEGABLE = "ann-spark"       # in delegableIdentities: a grantor's annotation may give it
UNLISTED = "free-spark"       # named nowhere in the policy
ANN_ID = "spark-identity.io/identity"
ANN_CLIENT = "spark-identity.io/client-id"
CLIENT = "5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c"
OTHER_CLIENT = "7e4b6931-9c3b-4e80-b6c9-c0a61cca3727"
TEAM = "spark-identity.io/team"

CLAIMS = "identity-claims.spark-identity.io"
GRANTS = "namespace-grants.spark-identity.io"
# The server watches namespaces and the policy file; this only bounds waits.
FOLLOW_TIMEOUT_S = 15


def claim_refusal(ns: str, identity: str) -> str:
    return (rf'admission webhook "{re.escape(CLAIMS)}" denied the request: namespace {re.escape(ns)} '
            rf'may not use Azure identity "{re.escape(identity)}" \(label aadpodidbinding\)')


def grant_refusal(user: str, ns: str, key: str) -> str:
    return (rf'admission webhook "{re.escape(GRANTS)}" denied the request: user {re.escape(user)} may not set '
            rf'grant keys of namespace {re.escape(ns)} \({re.escape(key)}\).*only the policy\'s grantors may '
            rf'change them \(group:system:masters, {re.escape(GRANTOR)}\)')


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def plain_pod(name: str, labels: dict | None = None) -> dict:
    """A pod that is not Spark's (an API deployment's, a debug shell)."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "guard", **(labels or {})}},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def make_namespace(cluster, name: str, labels: dict | None = None, annotations: dict | None = None,
                   user: str | None = None):
    """The namespace, created by user (the admin by default), and its
    ServiceAccounts, made by the admin (no kube-controller-manager runs)."""
    md: dict = {"name": name}
    if labels:
        md["labels"] = labels
    if annotations:
        md["annotations"] = annotations
    ns = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": md})
    p = (cluster.kubectl_as(user, "create", "-f", "-", input=ns) if user
         else cluster.kubectl("create", "-f", "-", input=ns))
    cluster.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": name}}
        for sa in ("default", "spark")]}))
    return p


def bind(cluster, ns: str, role: str) -> None:
    """role (a ClusterRole of conftest.py) for the tenants' group in ns."""
    cluster.kubectl("create", "rolebinding", f"{role}-tenants", "-n", ns, "--clusterrole", role,
                    "--group", cp.TENANT_GROUP)


def tenant(cluster, *args, **kw):
    return cluster.kubectl_as(TENANT, *args, **kw)


def labels_of(cluster, ns: str, name: str) -> dict:
    return get_pod(cluster, ns, name)["metadata"].get("labels") or {}


def namespace_md(cluster, name: str) -> dict:
    return cluster.kubectl_json("get", "namespace", name)["metadata"]


def decisions_for(webhook, name: str, since: int = 0) -> list[dict]:
    """The server's decision lines about the pod or namespace `name`, from
    the since-th line on."""
    return [d for d in webhook.decisions()[since:] if name in (d.get("pod"), d.get("object"))]


def wait_decision(webhook, name: str, since: int, holds) -> dict:
    """The server logs a decision before it answers; this allows for the
    file write."""
    deadline = time.monotonic() + 5
    while True:
        got = [d for d in decisions_for(webhook, name, since) if holds(d)]
        if got or time.monotonic() > deadline:
            assert got, f"no such decision line for {name}: {decisions_for(webhook, name, since)}"
            return got[-1]
        time.sleep(0.1)


def without_server_fields(pod: dict) -> dict:
    p = copy.deepcopy(pod)
    for k in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"):
        p["metadata"].pop(k, None)
    p.pop("status", None)
    return p


def dry_run_driver_identity(cluster, ns: str) -> str | None:
    pod = unique(fixture_object("spark35-driver.json"))
    p = create_pod(cluster, pod, ns, "--dry-run=server", "-o", "json", check=False)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout)["metadata"]["labels"].get(LABEL)


def wait_for_driver_identity(cluster, ns: str, want: str) -> None:
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    got = dry_run_driver_identity(cluster, ns)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.1)
        got = dry_run_driver_identity(cluster, ns)
    assert got == want, f"namespace {ns}: the next driver carries {got!r}, want {want!r}"


# ---------------------------------------------------------------------------
# Namespaces of this module, and what the tenant may do in them
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def guard_ns(kubectl, cluster):
    """A namespace without a rule where the tenant edits pods and writes
    their status; and team-b (enforce, team-b-spark), team-c (audit) and
    team-o (off) where it edits pods."""
    ns = new_name("guard")
    make_namespace(cluster, ns)
    if cluster.kubectl("get", "namespace", "team-o", check=False).returncode != 0:
        make_namespace(cluster, "team-o")
    bound = [(ns, TENANT_POD_ROLE), (ns, POD_STATUS_ROLE)] + [(n, TENANT_POD_ROLE)
                                                              for n in ("team-b", "team-c", "team-o")]
    for n, role in bound:
        bind(cluster, n, role)
    try:
        yield ns
    finally:
        for n, role in bound:
            cluster.kubectl("delete", "rolebinding", f"{role}-tenants", "-n", n, "--ignore-not-found", check=False)


def test_the_users_have_the_rights_of_a_tenant_and_no_more(guard_ns, cluster):
    """What the refusals below are not: RBAC. The tenant may edit pods (and
    write pods/status here); the namespace creator may create and edit
    namespaces, and neither may touch webhook configurations."""
    def can(user, *args):
        return cluster.kubectl_as(user, "auth", "can-i", *args, check=False).stdout.strip() == "yes"

    for verb in ("create", "update", "patch"):
        assert can(TENANT, verb, "pods", "-n", guard_ns)
        assert can(NS_CREATOR, verb, "namespaces")
    assert can(TENANT, "patch", "pods", "--subresource=status", "-n", guard_ns)
    assert not can(TENANT, "patch", "namespaces")
    for user in (TENANT, NS_CREATOR, GRANTOR):
        assert not can(user, "patch", "validatingwebhookconfigurations")
        assert not can(user, "patch", "configmaps", "-n", cp.WEBHOOK_NAMESPACE)
    who = cluster.kubectl_as(GRANTOR, "auth", "whoami", "-o", "json")
    assert "system:masters" not in json.loads(who.stdout)["status"]["userInfo"].get("groups", [])
    assert cluster.kubectl("get", "clusterrolebinding", NAMESPACE_CREATOR_ROLE).returncode == 0


# ---------------------------------------------------------------------------
# Every UPDATE path that adds a foreign identity
# ---------------------------------------------------------------------------

def _label(cluster, ns, name, identity):
    return tenant(cluster, "label", "pod", "-n", ns, name, f"{LABEL}={identity}", check=False)


def _merge_patch(cluster, ns, name, identity):
    return tenant(cluster, "patch", "pod", "-n", ns, name, "--type=merge",
                  "-p", json.dumps({"metadata": {"labels": {LABEL: identity}}}), check=False)


def _apply(cluster, ns, name, identity):
    pod = plain_pod(name, {LABEL: identity})
    return tenant(cluster, "apply", "-n", ns, "-f", "-", input=json.dumps(pod), check=False)


def _server_side_apply(cluster, ns, name, identity):
    pod = plain_pod(name, {LABEL: identity})
    return tenant(cluster, "apply", "--server-side", "-n", ns, "-f", "-", input=json.dumps(pod), check=False)


def _replace(cluster, ns, name, identity):
    pod = without_server_fields(json.loads(tenant(cluster, "get", "pod", "-n", ns, name, "-o", "json").stdout))
    pod["metadata"]["labels"][LABEL] = identity
    return tenant(cluster, "replace", "-n", ns, "-f", "-", input=json.dumps(pod), check=False)


def _status_patch(cluster, ns, name, identity):
    # The pods/status strategy keeps label changes: whoever may write a pod's
    # status (a node, an operator) could otherwise label it.
    return tenant(cluster, "patch", "pod", "-n", ns, name, "--subresource=status", "--type=merge",
                  "-p", json.dumps({"metadata": {"labels": {LABEL: identity}}}), check=False)


def _create(cluster, ns, name):
    return tenant(cluster, "create", "-n", ns, "-f", "-", input=json.dumps(plain_pod(name)))


def _create_by_apply(cluster, ns, name):
    return tenant(cluster, "apply", "-n", ns, "-f", "-", input=json.dumps(plain_pod(name)))


def _create_by_server_side_apply(cluster, ns, name):
    return tenant(cluster, "apply", "--server-side", "-n", ns, "-f", "-", input=json.dumps(plain_pod(name)))


UPDATE_PATHS = {
    # path: (how the tenant created the pod, how it tries to add the label, subResource)
    "label": (_create, _label, None),
    "merge-patch": (_create, _merge_patch, None),
    "apply": (_create_by_apply, _apply, None),
    "server-side-apply": (_create_by_server_side_apply, _server_side_apply, None),
    "replace": (_create, _replace, None),
    "pods-status": (_create, _status_patch, "status"),
}


@pytest.mark.parametrize("path", list(UPDATE_PATHS))
def test_no_update_path_adds_a_foreign_identity(guard_ns, cluster, webhook, path):
    make, update, sub = UPDATE_PATHS[path]
    name = new_name(f"upd-{path}")
    make(cluster, guard_ns, name)
    assert LABEL not in labels_of(cluster, guard_ns, name)
    mark = len(webhook.decisions())

    p = update(cluster, guard_ns, name, FOREIGN)
    assert p.returncode != 0, f"{path}: {p.stdout}"
    assert re.search(claim_refusal(guard_ns, FOREIGN), p.stderr), p.stderr
    assert "the policy grants it to other namespaces only" in p.stderr, p.stderr
    assert LABEL not in labels_of(cluster, guard_ns, name)

    line = wait_decision(webhook, name, mark, lambda d: d.get("decision") == "denied")
    assert line["webhook"] == "validate" and line["operation"] == "UPDATE", line
    assert line["identity"] == FOREIGN and line["user"] == TENANT, line
    assert "identityBefore" not in line, line
    assert line.get("subResource") == sub, line
    assert "may not use Azure identity" in line["reason"], line


@pytest.fixture(scope="module")
def b_pod(guard_ns, cluster):
    """A pod of team-b that carries team-b's own identity (created by the
    tenant: the policy grants it there)."""
    name = new_name("b-own")
    tenant(cluster, "create", "-n", "team-b", "-f", "-", input=json.dumps(plain_pod(name, {LABEL: B_IDENTITY})))
    assert labels_of(cluster, "team-b", name)[LABEL] == B_IDENTITY
    return name


def test_changing_a_granted_identity_to_a_foreign_one_is_refused(b_pod, cluster, webhook):
    mark = len(webhook.decisions())
    p = tenant(cluster, "label", "--overwrite", "pod", "-n", "team-b", b_pod, f"{LABEL}={FOREIGN}", check=False)
    assert p.returncode != 0, p.stdout
    assert re.search(claim_refusal("team-b", FOREIGN), p.stderr), p.stderr
    assert labels_of(cluster, "team-b", b_pod)[LABEL] == B_IDENTITY
    line = wait_decision(webhook, b_pod, mark, lambda d: d.get("decision") == "denied")
    assert (line["webhook"], line["operation"]) == ("validate", "UPDATE"), line
    assert (line["identityBefore"], line["identity"]) == (B_IDENTITY, FOREIGN), line


def test_updates_that_keep_the_identity_pass_and_never_reach_the_webhook(b_pod, guard_ns, cluster, webhook):
    """Another label, an annotation, the same label again (apply), a status
    write: allowed, and the matchConditions keep them from the webhook, so
    its outage could not block them either. Then removing the label."""
    mark = len(webhook.decisions())
    tenant(cluster, "label", "pod", "-n", "team-b", b_pod, "tier=batch")
    tenant(cluster, "annotate", "pod", "-n", "team-b", b_pod, "owner=data-eng")
    tenant(cluster, "label", "--overwrite", "pod", "-n", "team-b", b_pod, f"{LABEL}={B_IDENTITY}")
    stored = get_pod(cluster, "team-b", b_pod)
    assert stored["metadata"]["labels"] == {"app": "guard", LABEL: B_IDENTITY, "tier": "batch"}
    assert stored["metadata"]["annotations"]["owner"] == "data-eng"

    # A pod's status as the kubelet reports it (the admin writes it: the
    # tenant has no pods/status rights in team-b).
    status = {"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}
    cluster.kubectl("patch", "pod", "-n", "team-b", b_pod, "--subresource=status", "--type=merge",
                    "-p", json.dumps(status))
    assert get_pod(cluster, "team-b", b_pod)["status"]["conditions"][0]["reason"] == "Unschedulable"

    # An ordinary update of a pod without the label, too.
    other = new_name("plain")
    _create(cluster, guard_ns, other)
    tenant(cluster, "label", "pod", "-n", guard_ns, other, "tier=batch")
    tenant(cluster, "patch", "pod", "-n", guard_ns, other, "--subresource=status", "--type=merge",
           "-p", json.dumps(status))

    tenant(cluster, "label", "pod", "-n", "team-b", b_pod, f"{LABEL}-")
    assert LABEL not in labels_of(cluster, "team-b", b_pod)
    time.sleep(0.5)
    assert decisions_for(webhook, b_pod, mark) == [] and decisions_for(webhook, other, mark) == []


# ---------------------------------------------------------------------------
# A mutating webhook after ours
# ---------------------------------------------------------------------------

LATER_CONFIG = "zz-e2e-later-claim-webhook"
LATER_LABEL = "e2e.spark-identity.io/later-claim"       # pods the later webhook mutates
LATER_ANNOTATION = "e2e.spark-identity.io/later-claim"  # the identity it puts on them


class _LaterClaimWebhook(http.server.BaseHTTPRequestHandler):
    """Sets aadpodidbinding to the pod's LATER_ANNOTATION, as a careless or
    hostile mutating webhook of another component could."""
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        req = review["request"]
        md = req["object"]["metadata"]
        identity = (md.get("annotations") or {}).get(LATER_ANNOTATION)
        resp = {"uid": req["uid"], "allowed": True}
        if identity:
            ops = [{"op": "add", "path": "/metadata/labels/aadpodidbinding", "value": identity}]
            resp["patchType"] = "JSONPatch"
            resp["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                           "response": resp}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def later_pod(name: str, identity: str) -> dict:
    pod = plain_pod(name, {LATER_LABEL: "true"})
    pod["metadata"]["annotations"] = {LATER_ANNOTATION: identity}
    return pod


@pytest.fixture(scope="module")
def later_webhook(guard_ns, cluster, workdir):
    """A mutating webhook served from this process (its configuration's name
    sorts after ours, so the API server calls it after ours) for pods
    labelled LATER_LABEL in guard_ns. Our mutating webhooks do not match
    those pods when they come (no aadpodidbinding, no spark-role), and are
    not reinvoked for webhooks they did not run before."""
    d = workdir / "later-claim-webhook"
    d.mkdir()
    cp.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
               "-CA", str(cluster.pki / "ca.crt"), "-CAkey", str(cluster.pki / "ca.key"),
               "-keyout", "tls.key", "-out", "tls.crt", "-days", "1", "-subj", "/CN=e2e-later-claim-webhook",
               "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE",
               "-addext", "extendedKeyUsage=serverAuth", cwd=d)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / "tls.crt", d / "tls.key")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LaterClaimWebhook)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = mutating_webhook_config(
        LATER_CONFIG, "later-claim.e2e.spark-identity.io", f"https://127.0.0.1:{server.server_address[1]}/mutate",
        base64.b64encode((cluster.pki / "ca.crt").read_bytes()).decode(),
        {"matchExpressions": [{"key": LATER_LABEL, "operator": "Exists"}]},
        {"matchLabels": {"kubernetes.io/metadata.name": guard_ns}})
    try:
        cluster.kubectl("create", "-f", "-", input=json.dumps(config))
        # The API server follows webhook configurations by a watch: wait until
        # it calls this one (an identity named nowhere passes ours).
        probe = later_pod("later-probe", UNLISTED)
        deadline = time.monotonic() + 30
        while True:
            p = tenant(cluster, "create", "--dry-run=server", "-o", "json", "-n", guard_ns, "-f", "-",
                       input=json.dumps(probe), check=False)
            if p.returncode == 0 and json.loads(p.stdout)["metadata"]["labels"].get(LABEL) == UNLISTED:
                break
            assert time.monotonic() < deadline, f"the later webhook is not called: {p.stderr}"
            time.sleep(0.25)
        yield
    finally:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", LATER_CONFIG, "--ignore-not-found", check=False)
        server.shutdown()
        server.server_close()


def test_a_later_mutating_webhook_cannot_add_a_foreign_identity(later_webhook, guard_ns, cluster, webhook):
    name = new_name("later-foreign")
    mark = len(webhook.decisions())
    p = tenant(cluster, "create", "-n", guard_ns, "-f", "-", input=json.dumps(later_pod(name, FOREIGN)),
               check=False)
    assert p.returncode != 0, p.stdout
    assert re.search(claim_refusal(guard_ns, FOREIGN), p.stderr), p.stderr
    g = cluster.kubectl("get", "pod", "-n", guard_ns, name, check=False)
    assert g.returncode != 0 and "NotFound" in g.stderr
    lines = decisions_for(webhook, name, mark)
    # Only the validating webhook saw the label: no mutating one was called.
    assert [(d["webhook"], d["operation"], d["decision"], d["identity"]) for d in lines] == \
        [("validate", "CREATE", "denied", FOREIGN)], lines


def test_a_later_mutating_webhook_may_add_an_identity_the_namespace_may_carry(later_webhook, guard_ns, cluster):
    """The same webhook with an identity the policy names nowhere (allowed
    where no rule applies, with unlistedIdentities: allow): the pod is
    stored as the later webhook made it."""
    name = new_name("later-free")
    tenant(cluster, "create", "-n", guard_ns, "-f", "-", input=json.dumps(later_pod(name, UNLISTED)))
    assert labels_of(cluster, guard_ns, name)[LABEL] == UNLISTED


# ---------------------------------------------------------------------------
# Grants: who may give a namespace an identity
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("key, kind, value", [(ANN_ID, "annotation", DELEGABLE), (TEAM, "label", "data")],
                         ids=["annotation", "selector-label"])
def test_a_namespace_creator_cannot_create_a_namespace_with_an_identity(kubectl, cluster, webhook, key, kind,
                                                                        value):
    name = new_name("self-grant")
    md = {"name": name, ("annotations" if kind == "annotation" else "labels"): {key: value}}
    mark = len(webhook.decisions())
    p = cluster.kubectl_as(NS_CREATOR, "create", "-f", "-", check=False,
                           input=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": md}))
    assert p.returncode != 0, p.stdout
    assert re.search(grant_refusal(NS_CREATOR, name, f"{kind} {key}"), p.stderr), p.stderr
    assert "NotFound" in cluster.kubectl("get", "namespace", name, check=False).stderr
    line = wait_decision(webhook, name, mark, lambda d: d.get("decision") == "denied")
    assert (line["webhook"], line["operation"], line["resource"]) == ("validate", "CREATE", "namespaces"), line
    assert line["grantKeys"] == f"{kind} {key}" and line["user"] == NS_CREATOR, line


@pytest.fixture(scope="module")
def creators_ns(kubectl, cluster):
    """A namespace the namespace creator made, plainly: allowed."""
    name = new_name("creator")
    make_namespace(cluster, name, user=NS_CREATOR)
    return name


@pytest.mark.parametrize("key, kind, value", [
    (ANN_ID, "annotation", DELEGABLE),
    (TEAM, "label", "data"),
    # env is read by the data-platform selector (NotIn [frozen]): a grant key
    # too, which the overlay lists in the matchConditions as an admin would.
    ("env", "label", "frozen"),
], ids=["annotation", "selector-label", "selector-expression-label"])
def test_a_namespace_creator_cannot_give_its_namespace_an_identity(creators_ns, cluster, webhook, key, kind, value):
    verb = "annotate" if kind == "annotation" else "label"
    mark = len(webhook.decisions())
    p = cluster.kubectl_as(NS_CREATOR, verb, "namespace", creators_ns, f"{key}={value}", check=False)
    assert p.returncode != 0, p.stdout
    assert re.search(grant_refusal(NS_CREATOR, creators_ns, f"{kind} {key}"), p.stderr), p.stderr
    md = namespace_md(cluster, creators_ns)
    assert key not in (md.get("annotations") or {}) and key not in (md.get("labels") or {}), md
    line = wait_decision(webhook, creators_ns, mark, lambda d: d.get("decision") == "denied")
    assert (line["operation"], line["grantKeys"]) == ("UPDATE", f"{kind} {key}"), line


def test_ordinary_namespace_changes_pass_and_never_reach_the_webhook(creators_ns, cluster, webhook):
    mark = len(webhook.decisions())
    cluster.kubectl_as(NS_CREATOR, "label", "namespace", creators_ns, "cost-center=4711")
    cluster.kubectl_as(NS_CREATOR, "annotate", "namespace", creators_ns, "description=ETL jobs")
    cluster.kubectl_as(NS_CREATOR, "label", "namespace", creators_ns, "cost-center-")
    md = namespace_md(cluster, creators_ns)
    assert md["annotations"]["description"] == "ETL jobs" and "cost-center" not in md["labels"]
    time.sleep(0.5)
    assert decisions_for(webhook, creators_ns, mark) == []


@pytest.mark.parametrize("user", [GRANTOR, None], ids=["listed-grantor", "system-masters"])
def test_a_grantor_gives_a_namespace_an_identity(kubectl, cluster, webhook, user):
    # By annotation (a delegable identity) ...
    ann_ns = new_name("granted-ann")
    make_namespace(cluster, ann_ns, annotations={ANN_ID: DELEGABLE, ANN_CLIENT: CLIENT}, user=user)
    wait_for_driver_identity(cluster, ann_ns, DELEGABLE)
    # ... and by a label the data-platform selector reads, set on an existing namespace.
    label_ns = new_name("granted-label")
    make_namespace(cluster, label_ns)
    run = (lambda *a: cluster.kubectl_as(user, *a)) if user else cluster.kubectl
    mark = len(webhook.decisions())
    run("label", "namespace", label_ns, f"{TEAM}=data")
    wait_for_driver_identity(cluster, label_ns, "data-spark")
    line = wait_decision(webhook, label_ns, mark, lambda d: d.get("resource") == "namespaces")
    assert line["decision"] != "denied" and line["grantKeys"] == f"label {TEAM}", line
    # The tenant's pods there may now carry it; next door they still may not.
    for ns in (label_ns, ann_ns):
        bind(cluster, ns, TENANT_POD_ROLE)
    tenant(cluster, "create", "-n", label_ns, "-f", "-", input=json.dumps(plain_pod("api", {LABEL: "data-spark"})))
    p = tenant(cluster, "create", "-n", ann_ns, "-f", "-", check=False,
               input=json.dumps(plain_pod("api", {LABEL: "data-spark"})))
    assert p.returncode != 0 and re.search(claim_refusal(ann_ns, "data-spark"), p.stderr), p.stderr


@pytest.mark.parametrize("identity, owner", [(FOREIGN, "entry team-a"), ("data-spark", "selector data-platform"),
                                             (UNLISTED, None)],
                         ids=["entry", "selector", "not-delegable"])
def test_a_grantor_cannot_delegate_an_identity_that_is_not_delegable(kubectl, cluster, webhook, identity, owner):
    """A grantor's annotation naming an identity an entry or a selector
    reserves (or one not in delegableIdentities) is allowed, with a warning,
    but makes no rule: the namespace's Spark pods are refused, and so is any
    pod claiming that identity, each message naming the annotation and the
    identity."""
    ns = new_name("reserved")
    p = make_namespace(cluster, ns, annotations={ANN_ID: identity}, user=GRANTOR)
    why = (f'{ANN_ID} "{identity}" is reserved by the policy to other namespaces' if owner
           else f'{ANN_ID} "{identity}" is not in the policy\'s delegableIdentities')
    assert any(why in w for w in warnings_of(p)), p.stderr
    assert namespace_md(cluster, ns)["annotations"][ANN_ID] == identity

    driver = unique(fixture_object("spark35-driver.json"))
    d = create_pod(cluster, driver, ns, check=False)
    assert d.returncode != 0, d.stdout
    assert f"namespace {ns}'s spark-identity.io annotations do not make a valid rule: {why}" in d.stderr, d.stderr

    if owner:   # an unlisted identity stays free where no rule applies (unlistedIdentities: allow)
        c = create_pod(cluster, plain_pod("claim", {LABEL: identity}), ns, check=False)
        assert c.returncode != 0, c.stdout
        assert re.search(claim_refusal(ns, identity), c.stderr) and why in c.stderr, c.stderr


# ---------------------------------------------------------------------------
# The owner's mode, not the claimer's
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("claimer", ["team-c", "team-o"], ids=["audit-claimer", "off-claimer"])
def test_a_claimer_in_audit_or_off_mode_cannot_take_an_enforced_identity(guard_ns, cluster, policy, claimer):
    entry = policy["namespaces"][claimer]
    assert entry["mode"] in ("audit", "off") and entry["identity"] != FOREIGN
    assert model.judge_claim(policy, model.rule_for(policy, claimer), FOREIGN) == "denied"
    name = new_name("claim")
    p = tenant(cluster, "create", "-n", claimer, "-f", "-", input=json.dumps(plain_pod(name, {LABEL: FOREIGN})),
               check=False)
    assert p.returncode != 0, p.stdout
    assert re.search(claim_refusal(claimer, FOREIGN), p.stderr), p.stderr
    # Its own identity it carries; changing to the enforced one is refused too.
    tenant(cluster, "create", "-n", claimer, "-f", "-", input=json.dumps(plain_pod(name, {LABEL: entry["identity"]})))
    p = tenant(cluster, "label", "--overwrite", "pod", "-n", claimer, name, f"{LABEL}={FOREIGN}", check=False)
    assert p.returncode != 0 and re.search(claim_refusal(claimer, FOREIGN), p.stderr), p.stderr
    assert labels_of(cluster, claimer, name)[LABEL] == entry["identity"]


@pytest.mark.parametrize("identity, verdict", [("c-spark", "warn"), ("o-spark", "allowed")],
                         ids=["audit-owner", "off-owner"])
def test_an_identity_whose_owners_do_not_enforce_is_not_refused(guard_ns, cluster, policy, identity, verdict):
    """The other side of the same rule: team-c only audits c-spark, so a
    claim elsewhere is admitted with a warning; team-o's off leaves o-spark
    unprotected."""
    assert model.judge_claim(policy, None, identity) == verdict
    name = new_name("owner-mode")
    p = tenant(cluster, "create", "-n", guard_ns, "-f", "-", input=json.dumps(plain_pod(name, {LABEL: identity})))
    assert labels_of(cluster, guard_ns, name)[LABEL] == identity
    warnings = warnings_of(p)
    if verdict == "warn":
        assert any(f"identity {identity} is not allowed in namespace {guard_ns}" in w for w in warnings), p.stderr
    else:
        assert not warnings, p.stderr


# ---------------------------------------------------------------------------
# unlistedIdentities: deny, loaded by the running server
# ---------------------------------------------------------------------------

def _served_sha(webhook) -> str | None:
    st, body = webhook.readyz()
    return json.loads(body).get("policySha256") if st == 200 else None


def _serve_policy(webhook, text: str) -> None:
    """Replaces the served policy file (atomically, as a ConfigMap update
    swaps its files) and waits until the server reports its sha256."""
    path = Path(webhook.policy)
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(text)
    os.replace(tmp, path)
    want = hashlib.sha256(text.encode()).hexdigest()
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    while _served_sha(webhook) != want:
        assert time.monotonic() < deadline, f"the server did not load the new policy: {webhook.proc.tail(5)}"
        time.sleep(0.1)


@pytest.fixture
def unlisted_denied(guard_ns, cluster, webhook):
    """The served policy with `unlistedIdentities: deny` while the test runs;
    restored (and in force again) after it. A pod in guard_ns that carries an
    unlisted identity from before is handed to the test."""
    old = new_name("unlisted-old")
    tenant(cluster, "create", "-n", guard_ns, "-f", "-", input=json.dumps(plain_pod(old, {LABEL: UNLISTED})))
    original = Path(webhook.policy).read_text()
    assert "unlistedIdentities" not in original
    _serve_policy(webhook, original + "\n# test_11: identities the policy names nowhere are refused\n"
                                      "unlistedIdentities: deny\n")
    try:
        yield old
    finally:
        _serve_policy(webhook, original)


def test_unlisted_identities_deny_refuses_identities_named_nowhere(unlisted_denied, guard_ns, cluster, policy):
    denied = dict(policy, unlistedIdentities="deny")
    assert model.judge_claim(denied, None, UNLISTED) == "denied"
    assert model.judge_claim(policy, None, UNLISTED) == "allowed"
    why = "the policy names it nowhere and refuses such identities (unlistedIdentities: deny)"

    name = new_name("unlisted-new")
    p = tenant(cluster, "create", "-n", guard_ns, "-f", "-", input=json.dumps(plain_pod(name, {LABEL: UNLISTED})),
               check=False)
    assert p.returncode != 0 and re.search(claim_refusal(guard_ns, UNLISTED), p.stderr) and why in p.stderr, \
        p.stderr
    _create(cluster, guard_ns, name)
    p = _label(cluster, guard_ns, name, UNLISTED)
    assert p.returncode != 0 and why in p.stderr, p.stderr
    assert LABEL not in labels_of(cluster, guard_ns, name)

    # A pod that carried it from before keeps working: updates that leave the
    # label are allowed, and so is removing it.
    old = unlisted_denied
    tenant(cluster, "label", "pod", "-n", guard_ns, old, "tier=batch")
    assert labels_of(cluster, guard_ns, old)[LABEL] == UNLISTED
    tenant(cluster, "label", "pod", "-n", guard_ns, old, f"{LABEL}-")
    assert LABEL not in labels_of(cluster, guard_ns, old)


class _WithoutMatchConditions:
    """One validating webhook of ours without its matchConditions, so that
    every request its rules and selectors match reaches the server (an older
    registration, or an admin's own without CEL); restored after the test."""

    def __init__(self, cluster, registration, webhook_name: str):
        self.cluster, self.config = cluster, registration.validating_name
        cfg = cluster.kubectl_json("get", "validatingwebhookconfiguration", self.config)
        self.index = next(i for i, w in enumerate(cfg["webhooks"]) if w["name"] == webhook_name)
        self.saved = cfg["webhooks"][self.index]["matchConditions"]

    def _patch(self, op: dict) -> None:
        self.cluster.kubectl("patch", "validatingwebhookconfiguration", self.config, "--type=json",
                             "-p", json.dumps([op]))

    def __enter__(self):
        self._patch({"op": "remove", "path": f"/webhooks/{self.index}/matchConditions"})
        return self

    def __exit__(self, *exc):
        self._patch({"op": "add", "path": f"/webhooks/{self.index}/matchConditions", "value": self.saved})


@pytest.fixture
def claims_without_match_conditions(registration, cluster):
    with _WithoutMatchConditions(cluster, registration, CLAIMS):
        yield


@pytest.fixture
def grants_without_match_conditions(registration, cluster):
    with _WithoutMatchConditions(cluster, registration, GRANTS):
        yield


def until_it_reaches_the_server(webhook, name: str, change) -> dict:
    """The API server follows the configuration by a watch: repeats change(n)
    (an update of the object `name` that the matchConditions would keep
    from the webhook) until one reaches the server; its decision line."""
    deadline = time.monotonic() + 30
    n = 0
    while True:
        mark = len(webhook.decisions())
        n += 1
        change(n)
        time.sleep(0.2)
        lines = [d for d in decisions_for(webhook, name, mark) if d.get("operation") == "UPDATE"]
        if lines:
            (line,) = lines
            return line
        assert time.monotonic() < deadline, "the API server still applies the matchConditions"


def test_the_server_itself_allows_an_update_that_keeps_a_now_refused_identity(
        unlisted_denied, claims_without_match_conditions, guard_ns, cluster, webhook):
    """Without the matchConditions (an older registration, or an admin's
    own), UPDATEs of labelled pods reach the server: one that leaves the
    label as it was is allowed even though the policy now refuses the
    identity, so finalizers and garbage collection never get stuck."""
    old = unlisted_denied
    line = until_it_reaches_the_server(webhook, old, lambda n: tenant(
        cluster, "label", "--overwrite", "pod", "-n", guard_ns, old, f"round={n}"))
    assert (line["webhook"], line["decision"]) == ("validate", "unchanged"), line
    assert (line.get("identityBefore"), line.get("identity")) == (UNLISTED, UNLISTED), line
    assert labels_of(cluster, guard_ns, old)[LABEL] == UNLISTED
    # ... while a change of the label, on the same path, is judged.
    p = tenant(cluster, "label", "--overwrite", "pod", "-n", guard_ns, old, f"{LABEL}={UNLISTED}-2", check=False)
    assert p.returncode != 0 and re.search(claim_refusal(guard_ns, f"{UNLISTED}-2"), p.stderr), p.stderr


@pytest.fixture(scope="module")
def granted_ns(kubectl, cluster):
    """A namespace whose grant keys a grantor set: an annotation rule and
    the env label the data-platform selector reads."""
    name = new_name("granted")
    make_namespace(cluster, name, labels={"env": "prod"}, annotations={ANN_ID: DELEGABLE, ANN_CLIENT: CLIENT},
                   user=GRANTOR)
    wait_for_driver_identity(cluster, name, DELEGABLE)
    return name


@pytest.mark.parametrize("change", [
    ("annotate", "--overwrite", f"{ANN_ID}=ann-claimed"),
    ("annotate", f"{ANN_ID}-"),
    ("annotate", f"{ANN_CLIENT}-"),
    ("label", "--overwrite", "env=frozen"),
    ("label", "env-"),
], ids=["change-annotation", "remove-annotation", "remove-client-id", "change-label", "remove-label"])
def test_a_namespace_creator_cannot_change_or_remove_a_grant(granted_ns, cluster, change):
    verb, *args = change
    key = args[-1].split("=")[0].rstrip("-")
    kind = "annotation" if verb == "annotate" else "label"
    before = namespace_md(cluster, granted_ns)
    p = cluster.kubectl_as(NS_CREATOR, verb, "namespace", granted_ns, *args, check=False)
    assert p.returncode != 0, p.stdout
    assert re.search(grant_refusal(NS_CREATOR, granted_ns, f"{kind} {key}"), p.stderr), p.stderr
    after = namespace_md(cluster, granted_ns)
    assert (after.get("annotations"), after.get("labels")) == (before.get("annotations"), before.get("labels"))


def test_the_server_itself_allows_namespace_updates_that_keep_the_grant_keys(
        granted_ns, grants_without_match_conditions, cluster, webhook):
    """Without the matchConditions every UPDATE of the namespace reaches the
    server: the namespace creator's ordinary changes of a namespace that
    carries grant keys are allowed; its changes of a grant key are not."""
    line = until_it_reaches_the_server(webhook, granted_ns, lambda n: cluster.kubectl_as(
        NS_CREATOR, "label", "--overwrite", "namespace", granted_ns, f"round={n}"))
    assert (line["webhook"], line["resource"], line["user"]) == ("validate", "namespaces", NS_CREATOR), line
    assert line["decision"] != "denied" and not line.get("grantKeys"), line
    p = cluster.kubectl_as(NS_CREATOR, "annotate", "--overwrite", "namespace", granted_ns,
                           f"{ANN_CLIENT}={OTHER_CLIENT}", check=False)
    assert p.returncode != 0 and re.search(grant_refusal(NS_CREATOR, granted_ns, f"annotation {ANN_CLIENT}"),
                                           p.stderr), p.stderr


def test_a_namespace_creator_cannot_remove_a_grant_that_is_its_namespaces_only_annotation(kubectl, cluster):
    """The object then has no annotations at all (the matchConditions'
    !has(object.metadata.annotations) branch)."""
    name = new_name("only-ann")
    make_namespace(cluster, name, annotations={ANN_ID: DELEGABLE}, user=GRANTOR)
    assert namespace_md(cluster, name)["annotations"] == {ANN_ID: DELEGABLE}
    p = cluster.kubectl_as(NS_CREATOR, "annotate", "namespace", name, f"{ANN_ID}-", check=False)
    assert p.returncode != 0, p.stdout
    assert re.search(grant_refusal(NS_CREATOR, name, f"annotation {ANN_ID}"), p.stderr), p.stderr
    assert namespace_md(cluster, name)["annotations"] == {ANN_ID: DELEGABLE}
    # The grantor may.
    cluster.kubectl_as(GRANTOR, "annotate", "namespace", name, f"{ANN_ID}-")
    assert not namespace_md(cluster, name).get("annotations")
