"""The admission policy (`render admission-policy`) in the real API server,
with the webhook stopped and every webhook failing open (failurePolicy:
Ignore), so that nothing but the ValidatingAdmissionPolicy stands between a
pod and the identity it claims:

- another namespace's identity is refused on CREATE, and on UPDATE when a
  label is added or changed (kubectl label, patch, the status subresource);
  the owner's own pods are allowed; an update that leaves the label as it was
  is allowed, and so is removing it;
- a claimer in audit mode is refused when the owner enforces;
- identities granted by a selector or by annotations are judged from the
  namespace as the API server has it (namespaceObject), also after a
  relabelling; annotations that make no rule grant nothing;
- unlisted identities follow the claimer's rule, and `unlistedIdentities:
  deny` refuses them everywhere;
- over every namespace and identity of the test, the API server decides
  exactly as the webhook's own code does (`mutate` with the same policy);
- grant keys (the namespace-grants policy): a user who may create and edit
  namespaces but is no grantor (e2e-ns-creator) cannot create a namespace
  with a spark-identity.io/ annotation or a label a selector reads, nor add,
  change or remove one on an existing namespace (also through the
  namespaces/status and namespaces/finalize subresources, kube-system
  included); its ordinary namespace changes pass; the policy's grantor
  (e2e-grantor) and system:masters can; and over a table of namespace
  changes by each of them the API server decides, and words its refusal,
  exactly as the webhook's own code (`mutate --validate`).

The policies are the e2e policy with a delegable identity added (and then
`unlistedIdentities: deny`), rendered by the binary under test. Everything
is put back at the end: the objects removed, the pods deleted, the
failurePolicies restored, the webhook serving again, the test's RBAC for the
namespace subresources removed. (Namespaces are not deleted: without a
kube-controller-manager they would stay Terminating; their names are the
module's own.)"""
from __future__ import annotations

import copy
import json
import re
import subprocess
import time
import uuid

import pytest

from harness import FIXTURES, POLICY, ROOT, WEBHOOK_BIN, model, wait_mutating
import cluster as cp

LABEL = model.IDENTITY_LABEL
ANN = "spark-identity.io/"
TEAM = "spark-identity.io/team"
VAP = "identity-claims.spark-identity.io"
GRANTS_VAP = "namespace-grants.spark-identity.io"
NS_CREATOR = cp.NS_CREATOR_USER          # may create and edit namespaces; no grantor
GRANTOR = cp.GRANTOR_USER                # listed in the e2e policy's grantors
ADMIN = cp.ADMIN_USER                    # system:masters, the default grantor group
# The test's own rights for the namespace creator on the subresources whose
# strategies keep metadata changes (conftest's role has namespaces only).
NS_SUBRESOURCE_ROLE = "e2e-vap-namespace-subresources"
PARAMS = "spark-identity-claims"
PARAMS_NS = "spark-identity-system"
WEBHOOK_SELECTOR = "app.kubernetes.io/name=spark-identity-webhook"
DELEGATED = "vap-delegated"
TAG = uuid.uuid4().hex[:6]
MARK = "e2e-admission-policy"            # a label on every pod this module makes
# The API server loads policies, bindings and parameters from informers.
IN_FORCE_TIMEOUT_S = 30


def admission_policy_of(policy: dict, path) -> str:
    """`render admission-policy -o json` of `policy`, written to `path`."""
    path.write_text(json.dumps(policy, indent=1))
    p = subprocess.run([str(WEBHOOK_BIN), "render", "admission-policy", "--policy", str(path), "-o", "json"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def typed(v):
    """The model reads every scalar as a string; the policy reads plain
    booleans and integers as such (the YAML 1.2 core schema)."""
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    if v in ("true", "false"):
        return v == "true"
    if isinstance(v, str) and v.isdigit():
        return int(v)
    return v


def with_policy_changes(**changes) -> dict:
    """The e2e policy as JSON, with a delegable identity for annotations,
    and `changes`."""
    pol = typed(copy.deepcopy(model.load_policy(POLICY)))
    delegable = [str(i) for i in pol.get("delegableIdentities") or []]
    pol["delegableIdentities"] = delegable + ([DELEGATED] if DELEGATED not in delegable else [])
    pol.update(changes)
    return pol


def pod(name: str, identity: str | None) -> dict:
    labels = {MARK: TAG, "run": name}
    if identity is not None:
        labels[LABEL] = identity
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "shell", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}


def name_for(what: str) -> str:
    return f"vap-{what}-{uuid.uuid4().hex[:6]}"


def create(cluster, namespace: str, identity: str | None, *extra: str, name: str | None = None):
    return cluster.kubectl("create", "-n", namespace, "-f", "-", *extra,
                           input=json.dumps(pod(name or name_for("pod"), identity)), check=False)


def denial(namespace: str, identity: str) -> str:
    return (f"ValidatingAdmissionPolicy '{VAP}' with binding '{VAP}' denied request: namespace {namespace} "
            f"may not use Azure identity \"{identity}\" (label {LABEL}): ")


def assert_refused(p: subprocess.CompletedProcess, namespace: str, identity: str, why: str = "") -> None:
    assert p.returncode != 0, f"admitted: {p.stdout}"
    assert "Forbidden" in p.stderr, p.stderr
    assert denial(namespace, identity) + why in p.stderr, p.stderr


def assert_admitted(p: subprocess.CompletedProcess) -> None:
    assert p.returncode == 0, p.stderr


def labels_of(cluster, namespace: str, name: str) -> dict:
    return cluster.kubectl_json("get", "pod", "-n", namespace, name)["metadata"].get("labels") or {}


def wait_until(probe, what: str, timeout: float = IN_FORCE_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = probe()
        if ok:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what} within {timeout:.0f}s (last: {last})")


def wait_refused(cluster, namespace: str, identity: str, why: str = "") -> None:
    """Probes with --dry-run=server until the API server refuses the claim."""
    def probe():
        p = create(cluster, namespace, identity, "--dry-run=server")
        return p.returncode != 0 and denial(namespace, identity) + why in p.stderr, p.stderr or p.stdout
    wait_until(probe, f"the admission policy did not refuse {identity!r} in {namespace}")


def wait_admitted(cluster, namespace: str, identity: str) -> None:
    def probe():
        p = create(cluster, namespace, identity, "--dry-run=server")
        return p.returncode == 0, p.stderr
    wait_until(probe, f"the admission policy did not admit {identity!r} in {namespace}")


def grant_denial(user: str, namespace: str, keys: str) -> str:
    return (f"ValidatingAdmissionPolicy '{GRANTS_VAP}' with binding '{GRANTS_VAP}' denied request: user {user} "
            f"may not set grant keys of namespace {namespace} ({keys}): they decide which Azure identity its "
            f"pods may use, and only the policy's grantors may change them (group:system:masters, {GRANTOR})")


def assert_grant_refused(p: subprocess.CompletedProcess, user: str, namespace: str, keys: str) -> None:
    assert p.returncode != 0, f"admitted: {p.stdout}"
    assert "Forbidden" in p.stderr, p.stderr
    assert grant_denial(user, namespace, keys) in p.stderr, p.stderr


def namespace_object(name: str, labels: dict | None = None, annotations: dict | None = None) -> dict:
    md: dict = {"name": name}
    if labels:
        md["labels"] = labels
    if annotations:
        md["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": md}


def as_user(cluster, user: str, *args, **kw) -> subprocess.CompletedProcess:
    """kubectl as `user`: the admin (system:masters) or one of cp.USERS."""
    kw.setdefault("check", False)
    return cluster.kubectl(*args, **kw) if user == ADMIN else cluster.kubectl_as(user, *args, **kw)


def wait_grants(cluster, refused: bool) -> None:
    """Until the namespace-grants policy is (refused) or is no longer in
    force: the namespace creator's dry-run CREATE of a namespace with a grant
    key. With the webhook down and failing open, nothing else refuses it."""
    name = f"vap-grant-probe-{TAG}"
    ns = json.dumps(namespace_object(name, annotations={ANN + "identity": DELEGATED}))

    def probe():
        p = cluster.kubectl_as(NS_CREATOR, "create", "--dry-run=server", "-f", "-", input=ns, check=False)
        if refused:
            return grant_denial(NS_CREATOR, name, f"annotation {ANN}identity") in p.stderr, p.stderr or "admitted"
        # Until the API server follows the configuration, the stopped webhook may still fail closed.
        return p.returncode == 0, p.stderr
    wait_until(probe, f"the namespace-grants policy {'did not come into' if refused else 'stayed in'} force")


def namespace_items(name: str, labels: dict | None = None, annotations: dict | None = None) -> list[dict]:
    md: dict = {"name": name}
    if labels:
        md["labels"] = labels
    if annotations:
        md["annotations"] = annotations
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": md},
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}}]


# The namespaces of this module besides the suite's: each gets its rule
# another way (no controller-manager runs: the test makes their accounts).
OWN_NAMESPACES = {
    "selected": ({TEAM: "data"}, None),                               # selector data-platform: data-spark
    "frozen": ({TEAM: "data", "env": "frozen"}, None),                # NotIn [frozen] fails: no rule
    "annotated": (None, {ANN + "identity": DELEGATED}),               # a delegable identity by annotation
    "bad-annotations": (None, {ANN + "identity": DELEGATED, ANN + "client-id": "not-a-guid"}),
    "audit-annotated": (None, {ANN + "identity": DELEGATED, ANN + "mode": "audit"}),
}


class Setup:
    def __init__(self, cluster, workdir):
        self.cluster = cluster
        self.dir = workdir / "admission-policy"
        self.dir.mkdir(exist_ok=True)
        self.policy = with_policy_changes()
        self.rendered = admission_policy_of(self.policy, self.dir / "policy.json")
        self.ns = {k: f"vap-{k}-{TAG}" for k in OWN_NAMESPACES}
        self.namespaces_used = {"team-a", "team-b", "team-c", "team-w", "team-x", *self.ns.values()}
        self.failure_policies: dict[tuple[str, str], list[str]] = {}
        self.legacy = f"vap-legacy-{TAG}"

    def make_namespaces(self) -> None:
        items = []
        for key, (labels, annotations) in OWN_NAMESPACES.items():
            items += namespace_items(self.ns[key], labels, annotations)
        # team-w (test_10's) may not exist yet.
        if self.cluster.kubectl("get", "namespace", "team-w", check=False).returncode != 0:
            items += namespace_items("team-w")
        self.cluster.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                    "items": items}))

    def webhook_configurations(self) -> list[dict]:
        got = self.cluster.kubectl_json("get", "mutatingwebhookconfigurations,validatingwebhookconfigurations",
                                        "-l", WEBHOOK_SELECTOR)
        return got["items"]

    def fail_open(self) -> None:
        """Every webhook of deploy/ to Ignore, remembering what it was."""
        for c in self.webhook_configurations():
            key = (c["kind"].lower(), c["metadata"]["name"])
            self.failure_policies[key] = [w.get("failurePolicy", "Fail") for w in c["webhooks"]]
            self._patch(key, ["Ignore"] * len(c["webhooks"]))

    def restore_failure_policies(self) -> None:
        for key, policies in self.failure_policies.items():
            self._patch(key, policies)

    def _patch(self, key: tuple[str, str], policies: list[str]) -> None:
        ops = [{"op": "replace", "path": f"/webhooks/{i}/failurePolicy", "value": v} for i, v in enumerate(policies)]
        self.cluster.kubectl("patch", key[0], key[1], "--type=json", "-p", json.dumps(ops))

    def apply(self, rendered: str) -> None:
        self.cluster.kubectl("apply", "-f", "-", input=rendered)

    def remove(self) -> None:
        for name in (VAP, GRANTS_VAP):
            self.cluster.kubectl("delete", "validatingadmissionpolicybinding", name, "--ignore-not-found")
            self.cluster.kubectl("delete", "validatingadmissionpolicy", name, "--ignore-not-found")
        self.cluster.kubectl("delete", "configmap", "-n", PARAMS_NS, PARAMS, "--ignore-not-found")

    def allow_namespace_subresources(self) -> None:
        """namespaces/status and namespaces/finalize for the namespace
        creator: the paths a grant could take besides the namespace itself."""
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": NS_SUBRESOURCE_ROLE},
             "rules": [{"apiGroups": [""], "resources": ["namespaces/status", "namespaces/finalize"],
                        "verbs": ["get", "update", "patch"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": NS_SUBRESOURCE_ROLE},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NS_SUBRESOURCE_ROLE},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": NS_CREATOR}]}]}))

    def remove_namespace_subresources(self) -> None:
        self.cluster.kubectl("delete", "clusterrolebinding,clusterrole", NS_SUBRESOURCE_ROLE, "--ignore-not-found",
                             check=False)

    def delete_pods(self) -> None:
        for ns in sorted(self.namespaces_used):
            self.cluster.kubectl("delete", "pods", "-n", ns, "-l", f"{MARK}={TAG}", "--ignore-not-found",
                                 "--wait=false", check=False)


@pytest.fixture(scope="module")
def setup(kubectl, cluster, webhook, registration, workdir):
    s = Setup(cluster, workdir)
    # While the webhook still serves: it lets the admin set grant keys.
    s.make_namespaces()
    webhook.stop()
    try:
        s.allow_namespace_subresources()
        s.fail_open()
        wait_mutating(cluster, False)
        # With the webhook down and failing open, nothing judges grants.
        wait_grants(cluster, refused=False)
        # A pod that claimed another namespace's identity while nothing checked.
        assert_admitted(create(cluster, "team-b", "sparkaks", name=s.legacy))
        s.apply(s.rendered)
        wait_refused(cluster, "team-b", "sparkaks")
        wait_grants(cluster, refused=True)
        yield s
    finally:
        s.remove()
        s.delete_pods()
        s.remove_namespace_subresources()
        # Later modules probe grants and expect the webhook's answers only.
        wait_grants(cluster, refused=False)
        webhook.start()
        s.restore_failure_policies()
        wait_mutating(cluster, True)


def test_the_objects_pass_the_api_servers_validation(setup, cluster):
    """What deploy/admission-policy/ holds, and the e2e policy's rendering,
    as the API server would store them (CEL compiled and type-checked)."""
    p = cluster.kubectl("apply", "--dry-run=server", "-f", ROOT / "deploy" / "admission-policy" / "admission-policy.yaml")
    assert f"validatingadmissionpolicy.admissionregistration.k8s.io/{VAP} configured (server dry run)" in p.stdout, \
        p.stdout
    stored = cluster.kubectl_json("get", "validatingadmissionpolicy", VAP)
    assert stored["spec"]["failurePolicy"] == "Fail"
    assert stored["metadata"]["annotations"]["spark-identity.io/policy-sha256"]
    binding = cluster.kubectl_json("get", "validatingadmissionpolicybinding", VAP)
    assert binding["spec"]["paramRef"]["parameterNotFoundAction"] == "Deny"
    # The e2e policy reads namespaces: its YAML holds the namespace-grants objects too.
    path = setup.dir / "policy.json"
    p = subprocess.run([str(WEBHOOK_BIN), "render", "admission-policy", "--policy", str(path)],
                       capture_output=True, text=True, timeout=30, check=True)
    p = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=p.stdout)
    for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        assert f"{kind}.admissionregistration.k8s.io/{GRANTS_VAP} unchanged (server dry run)" in p.stdout, p.stdout
    stored = cluster.kubectl_json("get", "validatingadmissionpolicy", GRANTS_VAP)
    assert stored["spec"]["failurePolicy"] == "Fail"
    assert not stored.get("status", {}).get("typeChecking", {}).get("expressionWarnings"), stored.get("status")
    binding = cluster.kubectl_json("get", "validatingadmissionpolicybinding", GRANTS_VAP)
    assert binding["spec"]["paramRef"] == {"name": PARAMS, "namespace": PARAMS_NS, "parameterNotFoundAction": "Deny"}


def test_another_namespaces_identity_is_refused_on_create(setup, cluster):
    name = name_for("thief")
    p = create(cluster, "team-b", "sparkaks", name=name)
    assert_refused(p, "team-b", "sparkaks", "the policy reserves it to other namespaces; it may use: team-b-spark")
    g = cluster.kubectl("get", "pod", "-n", "team-b", name, check=False)
    assert g.returncode != 0 and "NotFound" in g.stderr
    # A namespace without a rule: nothing it may use to name.
    p = create(cluster, "team-x", "sparkaks")
    assert_refused(p, "team-x", "sparkaks", "the policy reserves it to other namespaces\n")


def test_the_owner_may_carry_its_identities(setup, cluster):
    for identity in ("sparkaks", "team-a-api"):
        name = name_for("owner")
        assert_admitted(create(cluster, "team-a", identity, name=name))
        assert labels_of(cluster, "team-a", name)[LABEL] == identity


def test_adding_or_changing_the_label_on_update_is_refused(setup, cluster):
    name = name_for("update")
    assert_admitted(create(cluster, "team-b", None, name=name))
    assert_refused(cluster.kubectl("label", "pod", "-n", "team-b", name, f"{LABEL}=sparkaks", check=False),
                   "team-b", "sparkaks")
    patch = json.dumps({"metadata": {"labels": {LABEL: "sparkaks"}}})
    assert_refused(cluster.kubectl("patch", "pod", "-n", "team-b", name, "--type=merge", "-p", patch, check=False),
                   "team-b", "sparkaks")
    # The status subresource writes labels too.
    assert_refused(cluster.kubectl("patch", "pod", "-n", "team-b", name, "--subresource=status", "--type=merge",
                                   "-p", patch, check=False), "team-b", "sparkaks")
    assert LABEL not in labels_of(cluster, "team-b", name)
    # Its own identity is fine; changing it to another's is not.
    assert_admitted(cluster.kubectl("label", "pod", "-n", "team-b", name, f"{LABEL}=team-b-spark", check=False))
    assert_refused(cluster.kubectl("label", "pod", "-n", "team-b", name, f"{LABEL}=sparkaks", "--overwrite",
                                   check=False), "team-b", "sparkaks")
    assert labels_of(cluster, "team-b", name)[LABEL] == "team-b-spark"


def test_an_update_that_keeps_the_label_is_allowed_and_so_is_removing_it(setup, cluster):
    """The pod stored before the policy: whatever it claims, updates that
    leave the label alone pass (finalizers and garbage collection never get
    stuck), and the label can always go."""
    name = setup.legacy
    assert labels_of(cluster, "team-b", name)[LABEL] == "sparkaks"
    assert_admitted(cluster.kubectl("label", "pod", "-n", "team-b", name, "touched=yes", check=False))
    assert_admitted(cluster.kubectl("annotate", "pod", "-n", "team-b", name, "note=kept", check=False))
    assert_admitted(cluster.kubectl("label", "pod", "-n", "team-b", name, f"{LABEL}=sparkaks", "--overwrite",
                                    check=False))
    status = json.dumps({"metadata": {"labels": {"status-touched": "yes"}}})
    assert_admitted(cluster.kubectl("patch", "pod", "-n", "team-b", name, "--subresource=status", "--type=merge",
                                    "-p", status, check=False))
    assert_admitted(cluster.kubectl("label", "pod", "-n", "team-b", name, f"{LABEL}-", check=False))
    labels = labels_of(cluster, "team-b", name)
    assert LABEL not in labels and labels["touched"] == "yes" and labels["status-touched"] == "yes"
    # Put back, it is a new claim.
    assert_refused(cluster.kubectl("label", "pod", "-n", "team-b", name, f"{LABEL}=sparkaks", check=False),
                   "team-b", "sparkaks")


def test_a_claimer_in_audit_mode_is_refused_when_the_owner_enforces(setup, cluster):
    assert setup.policy["namespaces"]["team-c"]["mode"] == "audit"
    assert_refused(create(cluster, "team-c", "sparkaks"), "team-c", "sparkaks",
                   "the policy reserves it to other namespaces; it may use: c-spark")
    assert_admitted(create(cluster, "team-c", "c-spark"))
    # An identity its owners only audit: the webhook warns, the policy allows.
    assert_admitted(create(cluster, "team-b", "c-spark"))


def test_a_selector_grants_by_the_namespaces_labels(setup, cluster):
    selected, frozen = setup.ns["selected"], setup.ns["frozen"]
    assert_admitted(create(cluster, selected, "data-spark"))
    assert_refused(create(cluster, frozen, "data-spark"), frozen, "data-spark",
                   "the policy reserves it to other namespaces")
    assert_refused(create(cluster, "team-x", "data-spark"), "team-x", "data-spark")
    assert_refused(create(cluster, selected, "sparkaks"), selected, "sparkaks",
                   "the policy reserves it to other namespaces; it may use: data-spark")
    # The namespace as it is now: relabelled, it matches the selector.
    cluster.kubectl("label", "namespace", frozen, "env-")
    wait_admitted(cluster, frozen, "data-spark")
    cluster.kubectl("label", "namespace", frozen, "env=frozen")
    wait_refused(cluster, frozen, "data-spark")


def test_annotations_grant_delegable_identities_only(setup, cluster):
    annotated, bad = setup.ns["annotated"], setup.ns["bad-annotations"]
    assert_admitted(create(cluster, annotated, DELEGATED))
    assert_refused(create(cluster, "team-x", DELEGATED), "team-x", DELEGATED,
                   "the policy reserves it to other namespaces")
    assert_refused(create(cluster, bad, DELEGATED), bad, DELEGATED,
                   "the policy reserves it to other namespaces (its spark-identity.io/ annotations make no rule)")
    # An identity reserved by an entry cannot be taken by annotation.
    cluster.kubectl("annotate", "namespace", annotated, f"{ANN}identity=sparkaks", "--overwrite")
    wait_refused(cluster, annotated, "sparkaks", "the policy reserves it to other namespaces (")
    cluster.kubectl("annotate", "namespace", annotated, f"{ANN}identity={DELEGATED}", "--overwrite")
    wait_admitted(cluster, annotated, DELEGATED)


def test_unlisted_identities(setup, cluster):
    unlisted = f"nobody-{TAG}"
    assert_admitted(create(cluster, "team-x", unlisted))                 # no rule: not our business
    assert_refused(create(cluster, "team-b", unlisted), "team-b", unlisted,
                   "it is not in the rule of the namespace, which enforces; it may use: team-b-spark")
    assert_admitted(create(cluster, "team-c", unlisted))                 # its rule only audits
    deny = admission_policy_of(with_policy_changes(unlistedIdentities="deny"), setup.dir / "unlisted-deny.json")
    try:
        setup.apply(deny)
        why = "the policy names it nowhere and refuses such identities (unlistedIdentities: deny)"
        wait_refused(cluster, "team-x", unlisted, why)
        assert_refused(create(cluster, "team-c", unlisted), "team-c", unlisted, why)
        assert_admitted(create(cluster, "team-a", "sparkaks"))
    finally:
        setup.apply(setup.rendered)
        wait_admitted(cluster, "team-x", unlisted)


# ---------------------------------------------------------------------------
# The API server against the webhook's own code
# ---------------------------------------------------------------------------

def webhook_allows(policy_path, namespace: str, labels: dict, annotations: dict, identity: str) -> bool:
    """What `mutate` (the server's decision, same code) answers for a pod
    CREATE that claims `identity` in a namespace with these labels and
    annotations."""
    review = json.loads((FIXTURES / "rogue-pod.json").read_text())
    req = review["request"]
    req["uid"] = str(uuid.uuid4())
    req["namespace"] = namespace
    req["object"]["metadata"]["namespace"] = namespace
    req["object"]["metadata"]["labels"][LABEL] = identity
    args = [str(WEBHOOK_BIN), "mutate", "--policy", str(policy_path)]
    if labels:
        args += ["--namespace-labels", ",".join(f"{k}={v}" for k, v in labels.items())]
    ours = {k: v for k, v in annotations.items() if k.startswith(ANN)}
    if ours:
        args += ["--namespace-annotations", ",".join(f"{k}={v}" for k, v in ours.items())]
    p = subprocess.run(args + ["-"], input=json.dumps(review), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["response"]["allowed"]


def test_the_api_server_decides_as_the_webhook(setup, cluster):
    identities = sorted({"sparkaks", "team-a-api", "team-b-spark", "c-spark", "data-spark", DELEGATED,
                         f"nobody-{TAG}"} | set(model.identity_protection(setup.policy)))
    namespaces = ["team-a", "team-b", "team-c", "team-w", "team-x", *setup.ns.values()]
    differ, n = [], 0
    for ns in namespaces:
        md = cluster.kubectl_json("get", "namespace", ns)["metadata"]
        labels, annotations = md.get("labels") or {}, md.get("annotations") or {}
        for identity in identities:
            want = webhook_allows(setup.dir / "policy.json", ns, labels, annotations, identity)
            p = create(cluster, ns, identity, "--dry-run=server")
            got = p.returncode == 0
            if not got:
                assert denial(ns, identity) in p.stderr, p.stderr
            n += 1
            if got != want:
                differ.append(f"{ns} claims {identity}: webhook {'allows' if want else 'refuses'}, "
                              f"admission policy {'allows' if got else 'refuses'}")
    assert n >= 70
    assert not differ, "\n".join(differ)


# ---------------------------------------------------------------------------
# Grant keys: the namespace-grants policy
# ---------------------------------------------------------------------------

SELECTOR_LABELS = {TEAM: "data", "env": "prod"}      # the keys the data-platform selector reads


@pytest.mark.parametrize("labels, annotations, keys", [
    (None, {ANN + "identity": DELEGATED}, f"annotation {ANN}identity"),
    (None, {ANN + "mode": "audit"}, f"annotation {ANN}mode"),         # any spark-identity.io/ annotation
    ({TEAM: "data"}, None, f"label {TEAM}"),
    ({"env": "prod"}, None, "label env"),                             # read by a matchExpressions entry
], ids=["identity-annotation", "other-annotation", "selector-label", "selector-expression-label"])
def test_a_namespace_creator_cannot_create_a_namespace_with_a_grant_key(setup, cluster, labels, annotations, keys):
    name = f"vap-self-grant-{uuid.uuid4().hex[:6]}"
    p = cluster.kubectl_as(NS_CREATOR, "create", "-f", "-", check=False,
                           input=json.dumps(namespace_object(name, labels, annotations)))
    assert_grant_refused(p, NS_CREATOR, name, keys)
    assert "NotFound" in cluster.kubectl("get", "namespace", name, check=False).stderr


@pytest.fixture(scope="module")
def creators_ns(setup, cluster):
    """A namespace the namespace creator made, without grant keys: allowed
    (the API server's own kubernetes.io/metadata.name label is no grant key)."""
    name = f"vap-creator-{TAG}"
    cluster.kubectl_as(NS_CREATOR, "create", "-f", "-", input=json.dumps(namespace_object(name)))
    return name


@pytest.fixture(scope="module")
def granted_ns(setup, cluster):
    """A namespace whose grant keys the admin set: an identity by annotation
    and the env label the data-platform selector reads."""
    name = f"vap-granted-{TAG}"
    cluster.kubectl("create", "-f", "-", input=json.dumps(namespace_object(
        name, {"env": "prod"}, {ANN + "identity": DELEGATED, ANN + "client-id": "5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c"})))
    return name


def metadata_of(cluster, name: str) -> tuple[dict, dict]:
    md = cluster.kubectl_json("get", "namespace", name)["metadata"]
    return md.get("labels") or {}, md.get("annotations") or {}


@pytest.mark.parametrize("verb, arg, keys", [
    ("annotate", f"{ANN}identity={DELEGATED}", f"annotation {ANN}identity"),
    ("annotate", f"{ANN}auth=workloadIdentity", f"annotation {ANN}auth"),
    ("label", f"{TEAM}=data", f"label {TEAM}"),
    ("label", "env=prod", "label env"),
], ids=["identity-annotation", "auth-annotation", "selector-label", "selector-expression-label"])
def test_a_namespace_creator_cannot_add_a_grant_key(creators_ns, cluster, verb, arg, keys):
    before = metadata_of(cluster, creators_ns)
    assert_grant_refused(cluster.kubectl_as(NS_CREATOR, verb, "namespace", creators_ns, arg, check=False),
                         NS_CREATOR, creators_ns, keys)
    assert metadata_of(cluster, creators_ns) == before


def _patch_metadata(cluster, name, metadata, *extra):
    return cluster.kubectl_as(NS_CREATOR, "patch", "namespace", name, *extra, "--type=merge",
                              "-p", json.dumps({"metadata": metadata}), check=False)


def _finalize(cluster, name, change, workdir):
    """PUT namespaces/NAME/finalize with the namespace changed by change()."""
    ns = cluster.kubectl_json("get", "namespace", name)
    change(ns["metadata"])
    path = workdir / f"finalize-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(ns))
    return cluster.kubectl_as(NS_CREATOR, "replace", "--raw", f"/api/v1/namespaces/{name}/finalize", "-f", path,
                              check=False)


@pytest.mark.parametrize("how, keys", [
    (lambda c, n, w: c.kubectl_as(NS_CREATOR, "annotate", "--overwrite", "namespace", n, f"{ANN}identity=ann-spark",
                                  check=False), f"annotation {ANN}identity"),
    (lambda c, n, w: c.kubectl_as(NS_CREATOR, "annotate", "namespace", n, f"{ANN}client-id-", check=False),
     f"annotation {ANN}client-id"),
    (lambda c, n, w: c.kubectl_as(NS_CREATOR, "label", "--overwrite", "namespace", n, "env=frozen", check=False),
     "label env"),
    (lambda c, n, w: c.kubectl_as(NS_CREATOR, "label", "namespace", n, "env-", check=False), "label env"),
    (lambda c, n, w: _patch_metadata(c, n, {"annotations": {ANN + "identity": None}}), f"annotation {ANN}identity"),
    (lambda c, n, w: _patch_metadata(c, n, {"labels": {"env": "frozen"}}, "--subresource=status"), "label env"),
    (lambda c, n, w: _patch_metadata(c, n, {"annotations": {ANN + "identity": "ann-spark"}}, "--subresource=status"),
     f"annotation {ANN}identity"),
    (lambda c, n, w: _finalize(c, n, lambda md: md["annotations"].pop(ANN + "identity"), w),
     f"annotation {ANN}identity"),
    (lambda c, n, w: _finalize(c, n, lambda md: md["labels"].update(env="frozen"), w), "label env"),
], ids=["change-annotation", "remove-annotation", "change-label", "remove-label", "merge-patch-remove",
        "status-label", "status-annotation", "finalize-annotation", "finalize-label"])
def test_a_namespace_creator_cannot_change_or_remove_a_grant_key(granted_ns, cluster, workdir, how, keys):
    before = metadata_of(cluster, granted_ns)
    assert_grant_refused(how(cluster, granted_ns, workdir), NS_CREATOR, granted_ns, keys)
    assert metadata_of(cluster, granted_ns) == before


def test_kube_system_and_the_webhooks_namespace_are_judged_too(setup, cluster):
    """As the namespace-grants webhook, which has no namespaceSelector."""
    for name in ("kube-system", PARAMS_NS):
        p = cluster.kubectl_as(NS_CREATOR, "annotate", "namespace", name, f"{ANN}identity={DELEGATED}",
                               "--dry-run=server", check=False)
        assert_grant_refused(p, NS_CREATOR, name, f"annotation {ANN}identity")


def test_ordinary_namespace_changes_pass(creators_ns, granted_ns, cluster):
    """Labels and annotations that are no grant keys, on a namespace with
    grant keys too; and a spark-identity.io/ label that no selector reads
    (the webhook judges only the labels selectors read)."""
    for name in (creators_ns, granted_ns):
        cluster.kubectl_as(NS_CREATOR, "label", "namespace", name, "cost-center=4711")
        cluster.kubectl_as(NS_CREATOR, "annotate", "namespace", name, "description=ETL jobs")
        cluster.kubectl_as(NS_CREATOR, "label", "--overwrite", "namespace", name, "cost-center=4712")
        cluster.kubectl_as(NS_CREATOR, "label", "namespace", name, "cost-center-")
        cluster.kubectl_as(NS_CREATOR, "label", "namespace", name, f"{ANN}unread=yes")
        # The same value again changes nothing.
        for k, v in metadata_of(cluster, name)[1].items():
            if k.startswith(ANN):
                cluster.kubectl_as(NS_CREATOR, "annotate", "--overwrite", "namespace", name, f"{k}={v}")
        labels, annotations = metadata_of(cluster, name)
        assert annotations["description"] == "ETL jobs" and "cost-center" not in labels
        assert labels[f"{ANN}unread"] == "yes"
    name = f"vap-plain-{uuid.uuid4().hex[:6]}"
    cluster.kubectl_as(NS_CREATOR, "create", "-f", "-", input=json.dumps(namespace_object(
        name, {"cost-center": "4711"}, {"description": "plain"})))


@pytest.mark.parametrize("user", [GRANTOR, ADMIN], ids=["listed-grantor", "system-masters"])
def test_a_grantor_sets_changes_and_removes_grant_keys(setup, cluster, user):
    name = f"vap-by-grantor-{uuid.uuid4().hex[:6]}"
    p = as_user(cluster, user, "create", "-f", "-", input=json.dumps(namespace_object(
        name, SELECTOR_LABELS, {ANN + "identity": DELEGATED})))
    assert p.returncode == 0, p.stderr
    for args in (("annotate", "--overwrite", "namespace", name, f"{ANN}identity=ann-spark"),
                 ("annotate", "namespace", name, f"{ANN}mode=audit"),
                 ("label", "--overwrite", "namespace", name, "env=frozen"),
                 ("label", "namespace", name, f"{TEAM}-"),
                 ("annotate", "namespace", name, f"{ANN}identity-", f"{ANN}mode-")):
        p = as_user(cluster, user, *args)
        assert p.returncode == 0, f"{args}: {p.stderr}"
    labels, annotations = metadata_of(cluster, name)
    assert labels["env"] == "frozen" and TEAM not in labels
    assert not any(k.startswith(ANN) for k in annotations), annotations
    # A grantor's grant keys stay the grantor's: the namespace creator still may not.
    assert_grant_refused(cluster.kubectl_as(NS_CREATOR, "label", "namespace", name, "env-", check=False),
                         NS_CREATOR, name, "label env")


# The API server against the webhook's own code, on grants

def user_info(cluster, user: str) -> dict:
    """request.userInfo as the API server fills it for `user`."""
    who = json.loads(as_user(cluster, user, "auth", "whoami", "-o", "json", check=True).stdout)
    info = who["status"]["userInfo"]
    return {"username": info["username"], "groups": info.get("groups") or []}


def webhook_answers_grant(policy_path, info: dict, old: dict | None, new: dict) -> tuple[bool, str]:
    """What `mutate --validate` (the server's /validate, same code) answers
    for this namespace CREATE (old None) or UPDATE by this user."""
    req = {"uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1", "kind": "Namespace"},
           "resource": {"group": "", "version": "v1", "resource": "namespaces"}, "name": new["metadata"]["name"],
           "operation": "UPDATE" if old else "CREATE", "userInfo": info, "object": new}
    if old:
        req["oldObject"] = old
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}
    p = subprocess.run([str(WEBHOOK_BIN), "mutate", "--validate", "--policy", str(policy_path), "-"],
                       input=json.dumps(review), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    resp = json.loads(p.stdout)["response"]
    return resp["allowed"], (resp.get("status") or {}).get("message", "")


def api_server_answers_grant(cluster, user: str, old: dict | None, new: dict) -> tuple[bool, str]:
    verb = "replace" if old else "create"
    p = as_user(cluster, user, verb, "--dry-run=server", "-f", "-", input=json.dumps(new))
    if p.returncode == 0:
        return True, ""
    prefix = f"ValidatingAdmissionPolicy '{GRANTS_VAP}' with binding '{GRANTS_VAP}' denied request: "
    assert prefix in p.stderr, p.stderr
    return False, p.stderr.split(prefix, 1)[1].strip()


def keys_in_any_order(message: str) -> str:
    """CEL iterates a map in no fixed order: the keys of a refusal sorted."""
    m = re.search(r" \(([^()]*)\): they decide ", message)
    if not m:
        return message
    return message[:m.start(1)] + ", ".join(sorted(m.group(1).split(", "))) + message[m.end(1):]


def changed(ns: dict, labels: dict | None = None, annotations: dict | None = None) -> dict:
    """ns with these labels and annotations set (None: removed)."""
    out = copy.deepcopy(ns)
    for which, changes in (("labels", labels), ("annotations", annotations)):
        m = out["metadata"].setdefault(which, {})
        for k, v in (changes or {}).items():
            if v is None:
                m.pop(k, None)
            else:
                m[k] = v
        if not m:
            del out["metadata"][which]
    return out


UPDATES = {
    "ordinary-label": ({"cost-center": "4711"}, None),
    "ordinary-annotation": (None, {"description": "ETL"}),
    "unread-ours-label": ({ANN + "unread": "x"}, None),
    "same-values": ({"env": "prod"}, {ANN + "identity": DELEGATED}),
    "change-identity": (None, {ANN + "identity": "ann-spark"}),
    "add-mode": (None, {ANN + "mode": "audit"}),
    "remove-client-id": (None, {ANN + "client-id": None}),
    "remove-all-annotations": (None, {ANN + "identity": None, ANN + "client-id": None, "description": None}),
    "change-env": ({"env": "frozen"}, None),
    "remove-env": ({"env": None}, None),
    "add-team": ({TEAM: "data"}, None),
    "several": ({"env": "frozen", TEAM: "data"}, {ANN + "identity": "ann-spark", ANN + "client-id": None}),
}
CREATES = {
    "plain": ({"cost-center": "1"}, {"description": "x"}),
    "identity": (None, {ANN + "identity": DELEGATED}),
    "team-label": ({TEAM: "data"}, None),
    "env-label": ({"env": "prod"}, None),
    "unread-ours-label": ({ANN + "unread": "x"}, None),
    "several": (SELECTOR_LABELS, {ANN + "identity": DELEGATED, ANN + "mode": "audit"}),
}


def test_the_api_server_judges_grants_as_the_webhook(setup, cluster, granted_ns):
    base_name = f"vap-grant-table-{TAG}"
    cluster.kubectl("create", "-f", "-", input=json.dumps(namespace_object(
        base_name, {"env": "prod", "cost-center": "0"},
        {ANN + "identity": DELEGATED, ANN + "client-id": "5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c", "description": "d"})))
    base = cluster.kubectl_json("get", "namespace", base_name)
    cases = [(f"update {k}", base, changed(base, *v)) for k, v in UPDATES.items()]
    for k, (labels, annotations) in CREATES.items():
        new = namespace_object(f"vap-grant-new-{uuid.uuid4().hex[:6]}", labels, annotations)
        cases.append((f"create {k}", None, new))
    kube_system = cluster.kubectl_json("get", "namespace", "kube-system")
    cases.append(("update kube-system", kube_system, changed(kube_system, None, {ANN + "identity": DELEGATED})))

    differ, refused, n = [], 0, 0
    for user in (NS_CREATOR, GRANTOR, ADMIN):
        info = user_info(cluster, user)
        for what, old, new in cases:
            want = webhook_answers_grant(setup.dir / "policy.json", info, old, new)
            got = api_server_answers_grant(cluster, user, old, new)
            n += 1
            refused += not got[0]
            if (got[0], keys_in_any_order(got[1])) != (want[0], keys_in_any_order(want[1])):
                differ.append(f"{user} {what}: webhook {want}, admission policy {got}")
    assert n == 3 * len(cases) and refused >= 10
    assert not differ, "\n".join(differ)
