"""`render identities` against the real API server: the e2e policy (the one
the webhook serves) with a resourceId given to each of its namespace rules,
rendered by the binary under test.

- aad-pod-identity's AzureIdentity and AzureIdentityBinding CRDs
  (aadpodidentity.k8s.io/v1, tests/e2e/aadpodidentity-crds.yaml, written
  from the published schema) are installed; every object of
  `render identities` (YAML) is applied with kubectl and stored as rendered
  (the schema drops unknown fields, so a misspelt field would show), and the
  JSON rendering applies as the same objects (kubectl reports each
  unchanged);
- the policy and the objects agree: every namespace rule has its objects
  and no others exist; a Spark driver created in each enforcing
  pod-identity namespace carries, as the webhook labelled it, the
  aadpodidbinding value the stored binding selects, and its AzureIdentity
  is the binding's; a Spark driver in the workload-identity namespace runs
  as the stored ServiceAccount, and its AZURE_CLIENT_ID and AZURE_TENANT_ID
  are the ServiceAccount's annotations;
- the federated credentials, for the API server's own issuer (read from
  its /.well-known/openid-configuration): the Terraform read back by a
  strict reader (tests/integration/hcl.py; there is no terraform binary
  here) and the script run with a stand-in for `az` first on PATH (a script
  of this test that records its arguments; not the Azure CLI); each names
  the rule's managed identity and resource group, and its issuer, subject
  and audience are those of a token the API server mints for the
  ServiceAccount with that audience (TokenRequest), which is what Entra ID
  compares.

Namespaces of the policy that no earlier test made are created (without a
kube-controller-manager they could not be deleted). The pods, the aad-pod-
identity objects and their CRDs are removed at the end, and the annotations
put on the ServiceAccount taken off."""
from __future__ import annotations

import base64
import importlib.util
import json
import os
import stat
import subprocess
import uuid

import pytest

from harness import HERE, ROOT, WEBHOOK_BIN, create_pod, fixture_object, get_pod, kubectl_objects, model, unique

CRDS = HERE / "aadpodidentity-crds.yaml"
CRD_NAMES = ["azureidentities.aadpodidentity.k8s.io", "azureidentitybindings.aadpodidentity.k8s.io"]
SUB = "6513270e-269e-4d37-b2a7-4de452e6b438"
AUDIENCE = "api://AzureADTokenExchange"
CLIENT_ANN = "azure.workload.identity/client-id"
TENANT_ANN = "azure.workload.identity/tenant-id"
MARK = "e2e-render-identities"
TAG = uuid.uuid4().hex[:6]


def _load_hcl():
    spec = importlib.util.spec_from_file_location("hcl", ROOT / "tests" / "integration" / "hcl.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


hcl = _load_hcl()


def resource_id(ns: str) -> str:
    """A managed identity per namespace, in two resource groups."""
    rg = "rg-spark-wi" if ns.endswith("w") else "rg-spark"
    return f"/subscriptions/{SUB}/resourcegroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{ns}"


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


@pytest.fixture(scope="module")
def identity_policy(policy, tmp_path_factory) -> tuple[dict, object]:
    """The e2e policy with a resourceId in each namespace rule, as JSON."""
    pol = typed(json.loads(json.dumps(policy)))
    for ns, entry in pol["namespaces"].items():
        entry["resourceId"] = resource_id(ns)
    path = tmp_path_factory.mktemp("render-identities") / "policy.json"
    path.write_text(json.dumps(pol, indent=1))
    return pol, path


def render(path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(WEBHOOK_BIN), "render", "identities", "--policy", str(path), *map(str, args)],
                          capture_output=True, text=True, timeout=30)


def rules(pol: dict) -> dict[str, "model.Rule"]:
    return {ns: model.rule_for(pol, ns) for ns in pol["namespaces"]}


@pytest.fixture(scope="module")
def issuer(kubectl, cluster) -> str:
    return json.loads(cluster.kubectl("get", "--raw", "/.well-known/openid-configuration").stdout)["issuer"]


@pytest.fixture(scope="module")
def applied(kubectl, cluster, identity_policy):
    """The CRDs, the policy's namespaces, and the YAML rendering applied;
    what kubectl printed, and the rendered objects."""
    pol, path = identity_policy
    cluster.kubectl("apply", "-f", CRDS)
    for name in CRD_NAMES:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    existing = {n["metadata"]["name"] for n in cluster.kubectl_json("get", "namespaces")["items"]}
    for ns in pol["namespaces"]:
        if ns not in existing:
            cluster.kubectl("create", "namespace", ns)
            cluster.kubectl("create", "serviceaccount", "default", "-n", ns)
    p = render(path)
    assert p.returncode == 0, p.stderr
    # The objects, through kubectl's own YAML reader (the e2e suite reads
    # no YAML itself).
    rendered = kubectl_objects(cluster.kubectl("create", "--dry-run=client", "-o", "json", "-f", "-",
                                               input=p.stdout).stdout)
    sa_keys = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in rendered if o["kind"] == "ServiceAccount"]
    try:
        out = cluster.kubectl("apply", "-f", "-", input=p.stdout).stdout
        yield out, rendered
    finally:
        cluster.kubectl("delete", "pods", "-A", "-l", MARK, "--ignore-not-found", "--wait=false", check=False)
        for ns, name in sa_keys:
            cluster.kubectl("annotate", "serviceaccount", name, "-n", ns, f"{CLIENT_ANN}-", f"{TENANT_ANN}-",
                            "spark-identity.io/generated-by-", "spark-identity.io/policy-sha256-", check=False)
        cluster.kubectl("delete", "-f", CRDS, "--ignore-not-found", check=False)


def stored(cluster, o: dict) -> dict:
    md = o["metadata"]
    return cluster.kubectl_json("get", f"{o['kind'].lower()}.{o['apiVersion'].split('/')[0]}"
                                if "/" in o["apiVersion"] else o["kind"].lower(), md["name"], "-n", md["namespace"])


def test_every_rendered_object_is_stored_as_rendered(cluster, applied):
    out, rendered = applied
    assert rendered
    for o in rendered:
        s = stored(cluster, o)
        md, smd = o["metadata"], s["metadata"]
        assert (s["apiVersion"], s["kind"]) == (o["apiVersion"], o["kind"])
        for k in ("labels", "annotations"):
            assert {key: smd.get(k, {}).get(key) for key in md[k]} == md[k], (o["kind"], md["name"], k)
        assert s.get("spec") == o.get("spec"), (o["kind"], md["name"])
    kinds = {o["kind"] for o in rendered}
    assert kinds == {"AzureIdentity", "AzureIdentityBinding", "ServiceAccount"}


def test_json_rendering_is_the_same_objects(cluster, applied, identity_policy):
    _, path = identity_policy
    p = render(path, "-o", "json")
    assert p.returncode == 0, p.stderr
    lines = cluster.kubectl("apply", "-f", "-", input=p.stdout).stdout.splitlines()
    assert len(lines) == len(applied[1])
    assert all(line.endswith(" unchanged") for line in lines), lines


def test_the_policy_and_the_objects_agree(cluster, applied, identity_policy):
    """Each namespace rule has its objects, and no other object was made."""
    pol, _ = identity_policy
    _, rendered = applied
    keys = sorted((o["metadata"]["namespace"], o["kind"]) for o in rendered)
    want = []
    for ns, rule in rules(pol).items():
        if rule.workload_identity:
            want.append((ns, "ServiceAccount"))
        else:
            want += [(ns, "AzureIdentity"), (ns, "AzureIdentityBinding")]
    assert keys == sorted(want)
    for ns, rule in rules(pol).items():
        entry = pol["namespaces"][ns]
        if rule.workload_identity:
            continue
        [ai] = cluster.kubectl_json("get", "azureidentities", "-n", ns)["items"]
        [ab] = cluster.kubectl_json("get", "azureidentitybindings", "-n", ns)["items"]
        assert ai["spec"]["resourceID"] == entry["resourceId"]
        assert ai["spec"]["clientID"] == entry["clientId"]
        assert ai["spec"]["type"] == 0
        assert ai["metadata"]["annotations"]["aadpodidentity.k8s.io/Behavior"] == "namespaced"
        assert ab["spec"]["azureIdentity"] == ai["metadata"]["name"]
        assert ab["spec"]["selector"] == entry["identity"]


def spark_pod(fixture: str) -> dict:
    pod = unique(fixture_object(fixture), TAG)
    pod["metadata"].setdefault("labels", {})[MARK] = "true"
    return pod


def test_pods_carry_what_the_bindings_select(cluster, applied, identity_policy):
    """A driver in each enforcing pod-identity namespace, as the webhook
    admits it: its aadpodidbinding is its binding's selector."""
    pol, _ = identity_policy
    checked = 0
    for ns, rule in rules(pol).items():
        if rule.workload_identity or rule.mode != "enforce":
            continue
        pod = spark_pod("spark35-driver.json")
        create_pod(cluster, pod, ns)
        label = get_pod(cluster, ns, pod["metadata"]["name"])["metadata"]["labels"][model.IDENTITY_LABEL]
        [ab] = cluster.kubectl_json("get", "azureidentitybindings", "-n", ns)["items"]
        assert label == ab["spec"]["selector"], ns
        checked += 1
    assert checked >= 2


def test_workload_identity_pods_run_as_the_service_account(cluster, applied, identity_policy):
    pol, _ = identity_policy
    checked = 0
    for ns, rule in rules(pol).items():
        if not rule.workload_identity:
            continue
        [sa] = [o for o in applied[1] if o["kind"] == "ServiceAccount" and o["metadata"]["namespace"] == ns]
        name = sa["metadata"]["name"]
        pod = spark_pod("spark40-driver.json")
        pod["spec"]["serviceAccountName"] = pod["spec"]["serviceAccount"] = name
        create_pod(cluster, pod, ns)
        got = get_pod(cluster, ns, pod["metadata"]["name"])
        assert got["spec"]["serviceAccountName"] == name
        env = {e["name"]: e.get("value") for c in got["spec"]["containers"] for e in c.get("env", [])}
        ann = cluster.kubectl_json("get", "serviceaccount", name, "-n", ns)["metadata"]["annotations"]
        assert env["AZURE_CLIENT_ID"] == ann[CLIENT_ANN]
        assert env["AZURE_TENANT_ID"] == ann[TENANT_ANN]
        checked += 1
    assert checked >= 1


def token_claims(cluster, ns: str, sa: str) -> dict:
    token = cluster.kubectl("create", "token", sa, "-n", ns, "--audience", AUDIENCE).stdout.strip()
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def wi_rules(pol: dict) -> list[tuple[str, dict]]:
    return sorted((ns, pol["namespaces"][ns]) for ns, r in rules(pol).items() if r.workload_identity)


def test_terraform_credentials_match_the_tokens(cluster, applied, identity_policy, issuer):
    pol, path = identity_policy
    p = render(path, "-o", "terraform", "--oidc-issuer", issuer)
    assert p.returncode == 0, p.stderr
    resources = hcl.parse(p.stdout)
    assert len(resources) == len(wi_rules(pol)) >= 1
    for (ns, entry), r in zip(wi_rules(pol), resources):
        args = r["args"]
        assert r["type"] == "azurerm_federated_identity_credential"
        assert args["parent_id"] == entry["resourceId"]
        assert args["resource_group_name"] == entry["resourceId"].split("/")[4]
        claims = token_claims(cluster, ns, entry["serviceAccount"])
        assert args["issuer"] == claims["iss"] == issuer
        assert args["subject"] == claims["sub"] == f"system:serviceaccount:{ns}:{entry['serviceAccount']}"
        assert args["audience"] == claims["aud"] == [AUDIENCE]


FAKE_AZ = """#!/bin/sh
# A stand-in for the Azure CLI: records its arguments, one a line, then a
# blank line, and succeeds.
for a in "$@"; do printf '%s\\n' "$a" >> "$AZ_LOG"; done
printf '\\n' >> "$AZ_LOG"
"""


def test_shell_credentials_match_the_tokens(cluster, applied, identity_policy, issuer, tmp_path):
    pol, path = identity_policy
    p = render(path, "-o", "shell", "--oidc-issuer", issuer)
    assert p.returncode == 0, p.stderr
    az = tmp_path / "az"
    az.write_text(FAKE_AZ)
    az.chmod(az.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "az.log"
    log.touch()
    run = subprocess.run(["sh", "-c", p.stdout], capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}", AZ_LOG=str(log)))
    assert run.returncode == 0, run.stderr
    calls = [c.split("\n") for c in log.read_text().split("\n\n") if c]
    assert len(calls) == len(wi_rules(pol)) >= 1
    for (ns, entry), call in zip(wi_rules(pol), calls):
        assert call[:3] == ["identity", "federated-credential", "create"]
        flags = dict(zip(call[3::2], call[4::2]))
        parts = entry["resourceId"].split("/")
        assert (flags["--identity-name"], flags["--resource-group"], flags["--subscription"]) == (
            parts[8], parts[4], parts[2])
        claims = token_claims(cluster, ns, entry["serviceAccount"])
        assert flags["--issuer"] == claims["iss"]
        assert flags["--subject"] == claims["sub"]
        assert [flags["--audience"]] == claims["aud"]
