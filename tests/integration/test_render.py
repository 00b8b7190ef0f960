"""`render admission-policy`: the committed deploy/admission-policy/ is
exactly what the command prints for deploy/policy.yaml now (so a policy
change without `make render` fails here); the three objects and the
ConfigMap's data against the policy as tests/integration/model.py reads it;
the namespace-grants policy and binding, printed only for a policy that
reads namespaces, with its grantors (however odd their names) and grant
labels in the ConfigMap; YAML and JSON say the same; --namespace; the
errors; the help.
(Through the real API server: tests/e2e/test_12_admission_policy.py.)"""
from __future__ import annotations

import hashlib
import json
import re

import pytest
import yaml

import model
from conftest import POLICY, ROOT, run_bin

DEPLOY_POLICY = ROOT / "deploy" / "policy.yaml"
COMPONENT = ROOT / "deploy" / "admission-policy"
RENDERED = COMPONENT / "admission-policy.yaml"
KINDS = ["ConfigMap", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
GRANT_KINDS = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
CLAIMS = "identity-claims.spark-identity.io"
GRANTS = "namespace-grants.spark-identity.io"
CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

# JSON, a policy's other syntax (and one the model reads whatever its shape).
SELECTOR_POLICY = json.dumps({
    "defaults": {"mode": "enforce", "allowedIdentities": ["shared-api"]},
    "namespaces": {"team-a": {"identity": "sparkaks", "allowedIdentities": ["team-a-api"]},
                   "team-c": {"identity": "c-spark", "mode": "audit"}},
    "selectors": [{"name": "data-platform",
                   "namespaceSelector": {"matchLabels": {"spark-identity.io/team": "data"},
                                         "matchExpressions": [{"key": "env", "operator": "NotIn",
                                                               "values": ["frozen"]}]},
                   "identity": "data-spark", "mode": "off"}],
    "namespaceAnnotations": True,
    "delegableIdentities": ["ann-spark"],
    "unlistedIdentities": "deny",
}, indent=2)

# Kubernetes user and group names are any strings: these must come back
# exactly, one per line of the ConfigMap's `grantors`.
ODD_GRANTORS = ["alice smith", "group:platform admins", "bob, jr.", "it's \"quoted\"", "trailing ",
                "group:a: b # c", "caf\u00e9", "- dash", "true", "group:system:masters"]
GRANTORS_POLICY = json.dumps({
    "selectors": [{"namespaceSelector": {"matchLabels": {"spark-identity.io/team": "data"},
                                         "matchExpressions": [{"key": "env", "operator": "NotIn",
                                                               "values": ["frozen"]}]},
                   "identity": "data-spark"},
                  {"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
                   "identity": "tier-spark"}],
    "grantors": ODD_GRANTORS,
})


def render(*args) -> tuple[int, str, str]:
    p = run_bin("render", *args)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def render_ok(*args) -> str:
    rc, out, err = render(*args)
    assert rc == 0, err
    assert err == ""
    return out


def objects(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


@pytest.fixture
def selector_policy(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(SELECTOR_POLICY)
    return path


@pytest.fixture
def grantors_policy(tmp_path):
    path = tmp_path / "grantors.json"
    path.write_text(GRANTORS_POLICY)
    return path


def reads_namespaces(policy: dict) -> bool:
    return bool(policy.get("selectors")) or policy.get("namespaceAnnotations") is True


def grant_labels(policy: dict) -> list[str]:
    """The label keys the selectors read, sorted, unique."""
    keys = set()
    for s in policy.get("selectors") or []:
        sel = s.get("namespaceSelector") or {}
        keys.update((sel.get("matchLabels") or {}).keys())
        keys.update(e["key"] for e in sel.get("matchExpressions") or [])
    return sorted(keys)


def kinds_of(policy: dict) -> list[str]:
    return KINDS + (GRANT_KINDS if reads_namespaces(policy) else [])


def test_the_committed_admission_policy_is_rendered_from_the_example_policy():
    want = render_ok("admission-policy", "--policy", DEPLOY_POLICY)
    got = RENDERED.read_text()
    assert got == want, (f"{RENDERED.relative_to(ROOT)} is not what `render admission-policy` prints for "
                         f"deploy/policy.yaml: run `make render` after changing the policy")


def test_the_component_holds_the_rendered_file():
    k = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert k["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    assert k["kind"] == "Component"
    assert k["resources"] == ["admission-policy.yaml"]


def test_the_header_names_the_policy_and_the_command():
    text = render_ok("admission-policy", "--policy", DEPLOY_POLICY)
    sha = hashlib.sha256(DEPLOY_POLICY.read_bytes()).hexdigest()
    head = text.split("\n---\n", 1)[0]
    assert all(line.startswith("#") for line in head.splitlines()), head
    assert f"with sha256 {sha}." in head
    assert "Generated by `spark-identity-webhook render admission-policy`" in head
    assert "render it again whenever the policy changes (make render)" in head
    for o in objects(text):
        ann = o["metadata"]["annotations"]
        assert ann["spark-identity.io/policy-sha256"] == sha
        assert ann["spark-identity.io/generated-by"] == "spark-identity-webhook render admission-policy"


@pytest.mark.parametrize("which", ["example", "fixture", "selectors", "grantors"])
def test_yaml_and_json_say_the_same(which, selector_policy, grantors_policy):
    path = {"example": DEPLOY_POLICY, "fixture": POLICY, "selectors": selector_policy,
            "grantors": grantors_policy}[which]
    docs = objects(render_ok("admission-policy", "--policy", path))
    as_json = json.loads(render_ok("admission-policy", "--policy", path, "-o", "json"))
    assert as_json["apiVersion"] == "v1" and as_json["kind"] == "List"
    assert as_json["items"] == docs
    assert [d["kind"] for d in docs] == kinds_of(model.load_policy(path))
    # YAML 1.1 readers (PyYAML, and kubectl's) see strings where strings are meant.
    assert all(isinstance(v, str) for v in docs[0]["data"].values())


def test_the_policy_and_its_binding():
    cm, vap, binding = objects(render_ok("admission-policy", "--policy", DEPLOY_POLICY))
    assert vap["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    spec = vap["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["paramKind"] == {"apiVersion": "v1", "kind": "ConfigMap"}
    assert spec["matchConstraints"]["resourceRules"] == [{
        "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
        "resources": ["pods", "pods/status"], "scope": "Namespaced"}]
    [cond] = spec["matchConditions"]
    assert "oldObject == null" in cond["expression"] and "aadpodidbinding" in cond["expression"]
    names = [v["name"] for v in spec["variables"]]
    assert names[0] == "identity" and "rule" in names and names[-1] == "mayUse"
    assert "allowed" in names
    [v] = spec["validations"]
    assert v["expression"] == "variables.allowed"
    assert v["reason"] == "Forbidden"
    assert "may not use Azure identity" in v["messageExpression"]
    assert "\n" not in v["message"]

    assert binding["metadata"]["name"] == vap["metadata"]["name"] == "identity-claims.spark-identity.io"
    b = binding["spec"]
    assert b["policyName"] == vap["metadata"]["name"]
    assert b["validationActions"] == ["Deny"]
    assert b["paramRef"] == {"name": cm["metadata"]["name"], "namespace": "spark-identity-system",
                             "parameterNotFoundAction": "Deny"}
    assert b["matchResources"]["namespaceSelector"] == {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
         "values": ["kube-system", "spark-identity-system"]}]}
    assert cm["metadata"]["namespace"] == "spark-identity-system"


def expected_data(policy: dict) -> dict[str, str]:
    """The ConfigMap's data, computed from the policy by the model."""
    defaults = policy.get("defaults") or {}
    dmode = str(defaults.get("mode") or "enforce")
    data = {
        "annotations": "true" if policy.get("namespaceAnnotations") is True else "false",
        "defaults": " ".join([dmode] + [str(i) for i in defaults.get("allowedIdentities") or []]),
        "unlisted": str(policy.get("unlistedIdentities") or "allow"),
    }
    for ns in policy.get("namespaces") or {}:
        r = model.rule_for(policy, ns)
        data[f"ns.{ns}"] = " ".join([r.mode] + r.may_claim())
    for i, s in enumerate(policy.get("selectors") or []):
        # A selector's rule merges like an entry's: the model builds it as one.
        entry = {k: v for k, v in s.items() if k not in ("name", "namespaceSelector")}
        r = model.rule_for({**policy, "namespaces": {"x": entry}}, "x")
        data[f"sel.{i}"] = " ".join([r.mode] + r.may_claim())
    for identity, mode in model.identity_protection(policy).items():
        data[f"owner.{identity}"] = mode
    for identity in policy.get("delegableIdentities") or []:
        data[f"delegable.{identity}"] = "true"
    data["grants"] = "true" if reads_namespaces(policy) else "false"
    grantors = policy["grantors"] if "grantors" in policy else ["group:system:masters"]
    data["grantors"] = "\n".join(str(g) for g in grantors or [])
    data["grantlabels"] = "\n".join(grant_labels(policy))
    return data


@pytest.mark.parametrize("which", ["example", "fixture", "selectors", "grantors"])
def test_the_configmap_carries_the_policy(which, selector_policy, grantors_policy):
    path = {"example": DEPLOY_POLICY, "fixture": POLICY, "selectors": selector_policy,
            "grantors": grantors_policy}[which]
    cm = objects(render_ok("admission-policy", "--policy", path))[0]
    data = cm["data"]
    assert all(CONFIGMAP_KEY.match(k) for k in data), [k for k in data if not CONFIGMAP_KEY.match(k)]
    want = expected_data(model.load_policy(path))
    got = {k: v for k, v in data.items() if not k.startswith("annotations.")}
    assert got == want
    assert data["annotations.auth"] in ("podIdentity", "workloadIdentity")


def test_the_grantors_come_back_exactly(grantors_policy):
    """Whatever a name holds (blanks, commas, quotes, a trailing space, YAML
    words), a line of `grantors` is one grantor, in YAML as in JSON."""
    for fmt in ("yaml", "json"):
        out = render_ok("admission-policy", "--policy", grantors_policy, "-o", fmt)
        cm = (objects(out) if fmt == "yaml" else json.loads(out)["items"])[0]
        assert cm["data"]["grantors"].split("\n") == ODD_GRANTORS
        assert cm["data"]["grantlabels"].split("\n") == ["env", "spark-identity.io/team", "tier"]
        assert cm["data"]["grants"] == "true"


def test_the_grants_policy_and_its_binding(grantors_policy):
    text = render_ok("admission-policy", "--policy", grantors_policy)
    cm, claims, claims_binding, vap, binding = objects(text)
    assert vap["metadata"]["name"] == binding["metadata"]["name"] == GRANTS
    assert claims["metadata"]["name"] == claims_binding["metadata"]["name"] == CLAIMS
    sha = hashlib.sha256(grantors_policy.read_bytes()).hexdigest()
    assert vap["metadata"]["annotations"]["spark-identity.io/policy-sha256"] == sha
    spec = vap["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["paramKind"] == {"apiVersion": "v1", "kind": "ConfigMap"}
    assert spec["matchConstraints"]["resourceRules"] == [{
        "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
        "resources": ["namespaces", "namespaces/status", "namespaces/finalize"], "scope": "Cluster"}]
    assert "matchConditions" not in spec
    exprs = {v["name"]: v["expression"] for v in spec["variables"]}
    assert list(exprs)[-2:] == ["allowed", "message"]
    assert exprs["allowed"] == "params.data['grants'] != 'true' || variables.changed.size() == 0 || variables.grantor"
    assert "params.data['grantors']" in exprs["grantors"] and "params.data['grantlabels']" in exprs["grantLabels"]
    # No grantor's name is CEL: they are data.
    assert not any(g in json.dumps(spec, ensure_ascii=False)
                   for g in ("alice smith", "platform admins", "bob, jr.", "quoted", "café", "a: b # c"))
    assert "request.userInfo.username" in exprs["grantor"] and "request.userInfo.groups" in exprs["grantor"]
    [v] = spec["validations"]
    assert v["expression"] == "variables.allowed" and v["reason"] == "Forbidden"
    assert "variables.message" in v["messageExpression"] and "\n" not in v["message"]
    assert "may not set grant keys of namespace" in exprs["message"]

    b = binding["spec"]
    assert b["policyName"] == GRANTS
    assert b["validationActions"] == ["Deny"]
    assert b["paramRef"] == {"name": cm["metadata"]["name"], "namespace": "spark-identity-system",
                             "parameterNotFoundAction": "Deny"}
    # Every namespace, kube-system and the webhook's own too, as the webhook.
    assert "matchResources" not in b
    head = text.split("\n---\n", 1)[0]
    assert f"# And a second ValidatingAdmissionPolicy ({GRANTS})" in head


def test_a_policy_that_reads_no_namespaces_gets_no_grants_policy():
    text = render_ok("admission-policy", "--policy", DEPLOY_POLICY)
    docs = objects(text)
    assert [d["kind"] for d in docs] == KINDS
    assert GRANTS not in [d["metadata"]["name"] for d in docs]
    assert docs[0]["data"]["grants"] == "false"
    head = " ".join(line.lstrip("# ") for line in text.split("\n---\n", 1)[0].splitlines())
    assert f"it has no grant keys, so namespace changes are not judged and no {GRANTS} policy is printed" in head


def test_the_selectors_become_cel(selector_policy):
    vap = objects(render_ok("admission-policy", "--policy", selector_policy))[1]
    exprs = {v["name"]: v["expression"] for v in vap["spec"]["variables"]}
    sel = exprs["selector0"]
    assert "('spark-identity.io/team' in variables.nsLabels)" in sel
    assert "variables.nsLabels['spark-identity.io/team'] in ['data']" in sel
    assert "!(('env' in variables.nsLabels) && variables.nsLabels['env'] in ['frozen'])" in sel
    assert "// sel.0: selector data-platform" in sel
    assert exprs["selector"] == "variables.selector0"


def test_namespace_moves_the_configmap_and_the_exclusion(selector_policy):
    text = render_ok("admission-policy", "--policy", DEPLOY_POLICY, "--namespace", "webhooks")
    cm, _, binding = objects(text)
    assert cm["metadata"]["namespace"] == "webhooks"
    assert binding["spec"]["paramRef"]["namespace"] == "webhooks"
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"] == \
        ["kube-system", "webhooks"]
    assert "render admission-policy --namespace webhooks` from the policy" in text.split("---", 1)[0]
    # The grants binding reads the same ConfigMap there, and leaves no namespace out.
    *_, grants_binding = objects(render_ok("admission-policy", "--policy", selector_policy, "--namespace", "webhooks"))
    assert grants_binding["spec"]["paramRef"]["namespace"] == "webhooks"
    assert "matchResources" not in grants_binding["spec"]


def test_a_policy_with_errors_is_refused_with_its_places(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults:\n  mode: sometimes\nnamespaces:\n  team-a: {identity: sparkaks, clientId: nope}\n")
    rc, out, err = render("admission-policy", "--policy", bad)
    assert rc == 2 and out == ""
    assert f"{bad}:2:9: defaults.mode: must be one of enforce | audit | off" in err
    assert re.search(rf"{re.escape(str(bad))}:4:\d+: namespaces\.team-a\.clientId: ", err), err


@pytest.mark.parametrize("args, message", [
    ([], "say what to render: admission-policy or identities"),
    (["network-policy", "--policy", DEPLOY_POLICY], 'cannot render "network-policy"; KIND is admission-policy or identities'),
    (["admission-policy"], "--policy FILE is required"),
    (["admission-policy", "--policy"], "--policy needs a value"),
    (["admission-policy", "--policy", DEPLOY_POLICY, "-o", "xml"], '-o is yaml or json for admission-policy, not "xml"'),
    (["admission-policy", "--policy", DEPLOY_POLICY, "--oidc-issuer", "https://x/"],
     "--oidc-issuer is for render identities"),
    (["admission-policy", "--policy", DEPLOY_POLICY, "--namespace", "Not_A_Namespace"],
     '--namespace "Not_A_Namespace" is not a namespace name'),
    (["admission-policy", "--policy", DEPLOY_POLICY, "extra"], 'unexpected "extra"'),
    (["admission-policy", "--policy", DEPLOY_POLICY, "--frobnicate"], "unknown option --frobnicate"),
])
def test_usage_errors(args, message):
    rc, out, err = render(*args)
    assert rc == 2 and out == ""
    assert message in err
    assert "(see 'spark-identity-webhook help render')" in err


def test_a_missing_policy_file(tmp_path):
    rc, out, err = render("admission-policy", "--policy", tmp_path / "nope.yaml")
    assert rc == 2 and out == ""
    assert "nope.yaml" in err


def test_data_that_no_configmap_can_hold(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("namespaces:\n" + "".join(
        f"  ns-{i:05d}: {{identity: identity-of-namespace-{i:05d}-with-a-long-name, "
        f"allowedIdentities: [api-of-namespace-{i:05d}-with-a-longer-name]}}\n" for i in range(6000)))
    assert run_bin("check-policy", path).returncode == 0
    rc, out, err = render("admission-policy", "--policy", path)
    assert rc == 2 and out == ""
    assert "the policy's data passes the 1048576 bytes a ConfigMap may hold" in err


def test_help():
    p = run_bin("help", "render")
    text = p.stdout.decode()
    assert p.returncode == 0
    assert text.startswith("Usage: spark-identity-webhook render KIND --policy FILE")
    for needle in ("admission-policy", "second line of defence", "while the webhook is down", GRANTS,
                   "grant key", "grantors",
                   "spark-identity-webhook render admission-policy --policy deploy/policy.yaml | kubectl apply -f -",
                   "again whenever the policy changes, or the API server goes on", "make render",
                   "render identities --policy FILE"):
        assert needle in text, needle
    assert run_bin("render", "--help").stdout == p.stdout
    assert run_bin("render", "admission-policy", "--help").stdout == p.stdout
    assert "render" in run_bin("--help").stdout.decode()
