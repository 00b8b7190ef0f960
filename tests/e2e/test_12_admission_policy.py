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
  exactly as the webhook's own code does (`mutate` with the same policy).

The policies are the e2e policy with a delegable identity added (and then
`unlistedIdentities: deny`), rendered by the binary under test. Everything
is put back at the end: the objects removed, the pods deleted, the
failurePolicies restored, the webhook serving again."""
from __future__ import annotations

import copy
import json
import subprocess
import time
import uuid

import pytest

from harness import FIXTURES, POLICY, ROOT, WEBHOOK_BIN, model, wait_mutating

LABEL = model.IDENTITY_LABEL
ANN = "spark-identity.io/"
TEAM = "spark-identity.io/team"
VAP = "identity-claims.spark-identity.io"
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
        self.cluster.kubectl("delete", "validatingadmissionpolicybinding", VAP, "--ignore-not-found")
        self.cluster.kubectl("delete", "validatingadmissionpolicy", VAP, "--ignore-not-found")
        self.cluster.kubectl("delete", "configmap", "-n", PARAMS_NS, PARAMS, "--ignore-not-found")

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
        s.fail_open()
        wait_mutating(cluster, False)
        # A pod that claimed another namespace's identity while nothing checked.
        assert_admitted(create(cluster, "team-b", "sparkaks", name=s.legacy))
        s.apply(s.rendered)
        wait_refused(cluster, "team-b", "sparkaks")
        yield s
    finally:
        s.remove()
        s.delete_pods()
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
