"""`render identities`: every pod-identity rule's AzureIdentity and
AzureIdentityBinding and every workload-identity rule's ServiceAccount
(YAML and JSON say the same), each agreeing with what `mutate` gives the
rule's Spark pods; the federated credentials as a script run against a
stand-in for `az` on PATH (a script of this test that records its
arguments, not the Azure CLI) and as Terraform read back by a strict
reader (tests/integration/hcl.py; no terraform binary here); the rules a
policy leaves out (selectors: warned); every error; resourceId in
check-policy; the help.
(Through the real API server: tests/e2e/test_20_render_identities.py.)"""
from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess

import pytest
import yaml

import hcl
from conftest import FIXTURES, ROOT, run_bin

SUB = "6513270e-269e-4d37-b2a7-4de452e6b438"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ISSUER = f"https://eastus.oic.prod-aks.azure.com/{TENANT}/0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f/"
AUDIENCE = "api://AzureADTokenExchange"


def rid(rg: str, name: str, groups: str = "resourceGroups") -> str:
    return f"/subscriptions/{SUB}/{groups}/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"


# team-a and team-wi are the namespaces of the Spark 3.5 and 4.0 driver
# fixtures, so that `mutate` can say what their pods get.
POLICY = {
    "defaults": {"tenantId": TENANT},
    "namespaces": {
        "team-a": {"identity": "sparkaks", "clientId": "d23f0824-128b-4f33-8c5c-7fd0a6a3a450",
                   "resourceId": rid("rg-spark", "sparkaks", "resourcegroups"),
                   "allowedIdentities": ["team-a-api"]},
        "team-b": {"identity": "Team_B.Spark", "clientId": "9531985d-5d9d-49f8-9818-e811892f902b",
                   "resourceId": rid("rg(b)", "b-spark")},
        "team-wi": {"auth": "workloadIdentity", "clientId": "35904882-c55f-4e4e-a5f8-b01b0a2ab043",
                    "serviceAccount": "spark-wi", "resourceId": rid("rg-wi", "wi-spark")},
        "team-wx": {"auth": "workloadIdentity", "clientId": "0d7e5c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6",
                    "tenantId": "36f675cc-81e7-4ef5-a8e2-5d940ed90475", "serviceAccount": "spark.driver",
                    "resourceId": rid("rg-wi", "wx-spark")},
    },
    "selectors": [{"name": "data-platform", "namespaceSelector": {"matchLabels": {"team": "data"}},
                   "identity": "data-spark"}],
}
PI = [ns for ns, e in POLICY["namespaces"].items() if e.get("auth") != "workloadIdentity"]
WI = [ns for ns, e in POLICY["namespaces"].items() if e.get("auth") == "workloadIdentity"]
SELECTOR_WARNING = ("render: warning: selector data-platform matches namespaces by their labels, which the "
                    "policy does not know: its objects are not rendered; make them in each namespace it matches\n")


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(POLICY))
    return path


def render(*args) -> tuple[int, str, str]:
    p = run_bin("render", "identities", *args)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def objects(policy, *args) -> list[dict]:
    rc, out, err = render("--policy", policy, *args)
    assert rc == 0, err
    assert err == SELECTOR_WARNING
    if "json" in args:
        lst = json.loads(out)
        assert (lst["apiVersion"], lst["kind"]) == ("v1", "List")
        return lst["items"]
    return [d for d in yaml.safe_load_all(out) if d is not None]


def by_kind(objs: list[dict], kind: str, ns: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind and o["metadata"]["namespace"] == ns]


def test_yaml_and_json_say_the_same(policy):
    assert objects(policy) == objects(policy, "-o", "json")
    assert objects(policy) == objects(policy, "-o", "yaml")


def test_every_rule_has_its_objects_and_nothing_else(policy):
    objs = objects(policy)
    # two per pod-identity rule, one per workload-identity rule; the selector none
    assert len(objs) == 2 * len(PI) + len(WI)
    sha = next(iter({o["metadata"]["annotations"]["spark-identity.io/policy-sha256"] for o in objs}))
    assert re.fullmatch(r"[0-9a-f]{64}", sha)
    for ns in PI:
        e = POLICY["namespaces"][ns]
        [ai] = by_kind(objs, "AzureIdentity", ns)
        [ab] = by_kind(objs, "AzureIdentityBinding", ns)
        assert ai["apiVersion"] == ab["apiVersion"] == "aadpodidentity.k8s.io/v1"
        assert ai["metadata"]["annotations"]["aadpodidentity.k8s.io/Behavior"] == "namespaced"
        assert ai["spec"] == {"type": 0, "resourceID": e["resourceId"], "clientID": e["clientId"]}
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", ai["metadata"]["name"])
        assert ab["metadata"]["name"] == ai["metadata"]["name"] + "-binding"
        assert ab["spec"] == {"azureIdentity": ai["metadata"]["name"], "selector": e["identity"]}
        assert not by_kind(objs, "ServiceAccount", ns)
    for ns in WI:
        e = POLICY["namespaces"][ns]
        [sa] = by_kind(objs, "ServiceAccount", ns)
        assert sa["apiVersion"] == "v1" and sa["metadata"]["name"] == e["serviceAccount"]
        ann = sa["metadata"]["annotations"]
        assert ann["azure.workload.identity/client-id"] == e["clientId"]
        assert ann["azure.workload.identity/tenant-id"] == e.get("tenantId", TENANT)
        assert not by_kind(objs, "AzureIdentity", ns)
    assert by_kind(objs, "AzureIdentity", "team-b")[0]["metadata"]["name"] == "team-b-spark"


def mutated(policy, fixture: str) -> dict:
    """The pod `mutate` makes of a fixture's review with this policy."""
    p = run_bin("mutate", "--policy", policy, FIXTURES / fixture)
    assert p.returncode == 0, p.stderr.decode()
    resp = json.loads(p.stdout)["response"]
    assert resp["allowed"], resp
    import jsonpatch
    pod = json.loads((FIXTURES / fixture).read_text())["request"]["object"]
    return jsonpatch.apply_patch(pod, json.loads(base64.b64decode(resp["patch"])))


def test_the_objects_agree_with_what_pods_get(policy):
    """The binding selects the label the webhook gives team-a's driver; the
    ServiceAccount carries the client the webhook gives team-wi's driver,
    which runs as it."""
    objs = objects(policy)
    pod = mutated(policy, "spark35-driver.json")
    [binding] = by_kind(objs, "AzureIdentityBinding", "team-a")
    assert pod["metadata"]["labels"]["aadpodidbinding"] == binding["spec"]["selector"]

    pod = mutated(policy, "spark40-driver.json")
    [sa] = by_kind(objs, "ServiceAccount", "team-wi")
    assert pod["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    env = {e["name"]: e.get("value") for c in pod["spec"]["containers"] for e in c.get("env", [])}
    assert env["AZURE_CLIENT_ID"] == sa["metadata"]["annotations"]["azure.workload.identity/client-id"]
    assert env["AZURE_TENANT_ID"] == sa["metadata"]["annotations"]["azure.workload.identity/tenant-id"]


def without_sha(answer: bytes) -> dict:
    review = json.loads(answer)
    review["response"].get("auditAnnotations", {}).pop("policy-sha256")
    return review


def test_resource_id_changes_no_decision(policy, tmp_path):
    """The same policy without resourceId answers every fixture alike (but
    for the policy's sha256 in the audit annotations)."""
    bare = json.loads(json.dumps(POLICY))
    for e in bare["namespaces"].values():
        del e["resourceId"]
    bare_path = tmp_path / "bare.yaml"
    bare_path.write_text(yaml.safe_dump(bare))
    for fixture in ("spark35-driver.json", "spark35-executor.json", "spark40-driver.json", "rogue-pod.json"):
        a = run_bin("mutate", "--policy", policy, FIXTURES / fixture)
        b = run_bin("mutate", "--policy", bare_path, FIXTURES / fixture)
        assert a.returncode == b.returncode == 0
        assert without_sha(a.stdout) == without_sha(b.stdout), fixture


FAKE_AZ = """#!/bin/sh
# A stand-in for the Azure CLI: records its arguments, one a line, then a
# blank line, and succeeds.
for a in "$@"; do printf '%s\\n' "$a" >> "$AZ_LOG"; done
printf '\\n' >> "$AZ_LOG"
"""


def run_script(script: str, tmp_path) -> list[list[str]]:
    """Runs the script with the stand-in `az` first on PATH; the calls made."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    az = bindir / "az"
    az.write_text(FAKE_AZ)
    az.chmod(az.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "az.log"
    log.unlink(missing_ok=True)
    log.touch()
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", AZ_LOG=str(log))
    p = subprocess.run(["sh", "-c", script], env=env, capture_output=True, timeout=20)
    assert p.returncode == 0, p.stderr.decode()
    return [call.split("\n") for call in log.read_text().split("\n\n") if call]


def as_flags(call: list[str]) -> dict:
    assert call[:3] == ["identity", "federated-credential", "create"], call
    rest = call[3:]
    assert len(rest) % 2 == 0 and all(k.startswith("--") for k in rest[::2]), rest
    flags = dict(zip(rest[::2], rest[1::2]))
    assert len(flags) == len(rest) // 2, "a flag given twice"
    return flags


def expected_credential(ns: str) -> dict:
    e = POLICY["namespaces"][ns]
    parts = e["resourceId"].split("/")
    return {"--name": f"{ns}-{e['serviceAccount']}".replace(".", "-"), "--identity-name": parts[8],
            "--resource-group": parts[4], "--subscription": parts[2], "--issuer": ISSUER,
            "--subject": f"system:serviceaccount:{ns}:{e['serviceAccount']}", "--audience": AUDIENCE}


def test_shell_runs_az_once_per_workload_identity_rule(policy, tmp_path):
    rc, out, err = render("--policy", policy, "-o", "shell", "--oidc-issuer", ISSUER)
    assert rc == 0 and err == "", err
    assert out.startswith("#!/bin/sh\n")
    assert subprocess.run(["sh", "-n", "-c", out]).returncode == 0
    calls = [as_flags(c) for c in run_script(out, tmp_path)]
    assert calls == [expected_credential(ns) for ns in sorted(WI)]


def test_shell_quotes_what_the_shell_would_read(tmp_path):
    """A resource group with parentheses and an issuer with a quote, $ and ;
    reach az as they are."""
    pol = {"namespaces": {"t": {"auth": "workloadIdentity", "tenantId": TENANT,
                                "clientId": "35904882-c55f-4e4e-a5f8-b01b0a2ab043", "serviceAccount": "sa",
                                "resourceId": rid("rg(x)_1.b", "id-1")}}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(pol))
    issuer = "https://issuer.example/it's/$HOME;touch${IFS}pwned/`id`/"
    rc, out, err = render("--policy", path, "-o", "shell", "--oidc-issuer", issuer)
    assert rc == 0, err
    [call] = run_script(out, tmp_path)
    flags = as_flags(call)
    assert flags["--issuer"] == issuer and flags["--resource-group"] == "rg(x)_1.b"
    assert not (tmp_path / "pwned").exists()


def test_terraform_reads_back(policy):
    rc, out, err = render("--policy", policy, "-o", "terraform", "--oidc-issuer", ISSUER)
    assert rc == 0 and err == "", err
    resources = hcl.parse(out)
    assert [r["type"] for r in resources] == ["azurerm_federated_identity_credential"] * len(WI)
    labels = [r["label"] for r in resources]
    assert len(set(labels)) == len(labels)
    for ns, r in zip(sorted(WI), resources):
        e = POLICY["namespaces"][ns]
        want = expected_credential(ns)
        assert r["args"] == {"name": want["--name"], "resource_group_name": want["--resource-group"],
                             "parent_id": e["resourceId"], "audience": [AUDIENCE], "issuer": ISSUER,
                             "subject": want["--subject"]}
        assert f"namespaces.{ns}" in r["comment"]


def test_terraform_strings_are_never_templates(policy):
    issuer = 'https://x.example/${var.a}/%{if}"\\'
    rc, out, err = render("--policy", policy, "-o", "terraform", "--oidc-issuer", issuer)
    assert rc == 0, err
    assert {r["args"]["issuer"] for r in hcl.parse(out)} == {issuer}


def test_hcl_reader_is_strict():
    ok = 'resource "t" "l" {\n  a = "x"\n  b = ["y", "z"]\n}\n'
    assert hcl.parse(ok) == [{"type": "t", "label": "l", "args": {"a": "x", "b": ["y", "z"]}, "comment": ""}]
    for bad in ['resource "t" "l" {\n  a = "${x}"\n}\n', 'resource "t" "l" {\n  a = x\n}\n',
                'resource "t" "l" {\n  a = "x" b = "y"\n}\n', 'resource "t" "1l" {\n}\n',
                'resource "t" "l" {\n  a = "x"\n  a = "y"\n}\n', 'data "t" "l" {\n}\n']:
        with pytest.raises(hcl.HclError):
            hcl.parse(bad)


def test_no_workload_identity_nothing_to_federate(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("namespaces:\n  t: {identity: x}\n")
    for fmt in ("shell", "terraform"):
        rc, out, err = render("--policy", path, "-o", fmt, "--oidc-issuer", ISSUER)
        assert rc == 0 and err == ""
        assert "nothing to federate" in out
    rc, out, _ = render("--policy", path, "-o", "shell", "--oidc-issuer", ISSUER)
    assert run_script(out, tmp_path) == []
    assert hcl.parse(render("--policy", path, "-o", "terraform", "--oidc-issuer", ISSUER)[1]) == []


def test_rules_that_lack_what_their_objects_need(tmp_path):
    pol = {"defaults": {"tenantId": TENANT},
           "namespaces": {"a": {"identity": "a-spark", "clientId": "d23f0824-128b-4f33-8c5c-7fd0a6a3a450"},
                          "b": {"identity": "b-spark", "resourceId": rid("rg", "b-id")},
                          "w": {"auth": "workloadIdentity", "clientId": "35904882-c55f-4e4e-a5f8-b01b0a2ab043"},
                          "v": {"auth": "workloadIdentity", "clientId": "35904882-c55f-4e4e-a5f8-b01b0a2ab043",
                                "serviceAccount": "spark"}}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(pol))
    rc, out, err = render("--policy", path)
    assert rc == 2 and out == ""
    assert err.splitlines() == [
        f"render: {path}: namespaces.a: resourceId is not set (in the rule or in defaults): the AzureIdentity of "
        "identity a-spark needs the managed identity's resource id (az identity show -g RG -n NAME --query id)",
        f"render: {path}: namespaces.b: clientId is not set (in the rule or in defaults): the AzureIdentity of "
        "identity b-spark needs the managed identity's client id",
        f"render: {path}: namespaces.w: serviceAccount is not set (in the rule or in defaults): the "
        "ServiceAccount to annotate and the federated credential's subject need its name",
    ]
    rc, out, err = render("--policy", path, "-o", "shell", "--oidc-issuer", ISSUER)
    assert rc == 2 and out == ""
    assert [line.split(": ")[2] for line in err.splitlines()] == ["namespaces.v", "namespaces.w"]


def test_a_malformed_resource_id_is_placed(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("namespaces:\n  team-a:\n    identity: x\n    resourceId: /subscriptions/nope\n")
    for cmd in (["render", "identities", "--policy", path], ["check-policy", path]):
        p = run_bin(*cmd)
        assert p.returncode in (1, 2) and p.stdout.decode().count("resourceId") + p.stderr.decode().count(
            "resourceId") == 1
        text = (p.stdout + p.stderr).decode()
        assert (f"{path}:4:17: namespaces.team-a.resourceId: \"/subscriptions/nope\" is not a user-assigned "
                "managed identity's resource id (/subscriptions/GUID/resourceGroups/RG/providers/"
                "Microsoft.ManagedIdentity/userAssignedIdentities/NAME): it has fewer than 8 segments") in text


def test_check_policy_shows_resource_id(policy):
    p = run_bin("check-policy", policy)
    assert p.returncode == 0, p.stdout
    out = p.stdout.decode()
    for ns, e in POLICY["namespaces"].items():
        block = out.split(f"\n{ns}:\n", 1)[1].split("\n\n", 1)[0]
        assert f"  resourceId {e['resourceId']}\n" in block + "\n"


@pytest.mark.parametrize("args, message", [
    (["-o", "xml"], '-o is yaml, json, terraform or shell for identities, not "xml"'),
    (["-o", "shell"], "-o shell writes federated credentials, which need the cluster's OIDC issuer: "
                      "--oidc-issuer URL"),
    (["-o", "terraform"], "-o terraform writes federated credentials"),
    (["-o", "shell", "--oidc-issuer", "http://issuer.example/"],
     '--oidc-issuer "http://issuer.example/" is not an https URL with a host'),
    (["-o", "shell", "--oidc-issuer", "https://a b/"], "is not an https URL with a host"),
    (["--oidc-issuer", ISSUER], "--oidc-issuer is for -o shell and -o terraform"),
    (["--namespace", "x"], "--namespace is for admission-policy"),
])
def test_usage_errors(policy, args, message):
    rc, out, err = render("--policy", policy, *args)
    assert rc == 2 and out == ""
    assert message in err
    assert "(see 'spark-identity-webhook help render')" in err


def test_without_policy():
    rc, out, err = render()
    assert rc == 2 and "--policy FILE is required" in err


def test_help_teaches_both_kinds():
    p = run_bin("render", "--help")
    assert p.returncode == 0
    out = p.stdout.decode()
    for words in ("render KIND --policy FILE", "render admission-policy --policy FILE",
                  "render identities --policy FILE",
                  "-o yaml|json|terraform|shell", "--oidc-issuer URL", "aadpodidentity.k8s.io/Behavior: namespaced",
                  "azure.workload.identity/client-id", "system:serviceaccount:NS:SA", "parent_id",
                  "oidcIssuerProfile.issuerUrl"):
        assert words in out, words
    assert max(len(line) for line in out.splitlines()) <= 100
