"""Workload identity mode (issue 7, design in the issue's spec) against the real
binary: one server with tests/fixtures/policy-workload-identity.yaml, where a
pod-identity namespace (team-a) and workload-identity namespaces (team-wi,
team-wi-deny, team-wi-audit, team-wi-lake) live side by side.

Answers are checked two ways: against model.expect (the oracle, computed from
the policy file and the pod, independently of the server), with the returned
patch applied by the `jsonpatch` package (RFC 6902); and, for the main cases,
against literal values written out below, so that the oracle and the server
cannot share a mistake unnoticed."""
from __future__ import annotations

import copy
import json
import re
import time

import pytest

import model
from conftest import (FIXTURES, Server, _first_diff, apply_response, decode_patch, env_of, fresh, in_namespace,
                      load_fixture, run_bin, spark_container, with_object)

WI_POLICY = FIXTURES / "policy-workload-identity.yaml"

# The policy's values, written out (not read through the oracle).
TENANT = "6513270e-269e-4d37-b2a7-4de452e6b438"                 # defaults.tenantId
CLIENT_A = "d23f0824-128b-4f33-8c5c-7fd0a6a3a450"               # team-a (pod identity)
CLIENT_WI = "3c9e1b7d-4a2f-4e8b-9d61-5f0a2c7e8b94"              # team-wi
CLIENT_DENY = "7a41d2e9-0c5b-4f37-a8e6-2b9d4c1f6e03"            # team-wi-deny
CLIENT_LAKE = "e05b9d3c-7f2a-4c61-b4e8-9a3d1c5f7b26"            # team-wi-lake
TENANT_LAKE = "0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
AUTHORITY = "https://login.microsoftonline.com/"
AUTHORITY_LAKE = "https://login.microsoftonline.us/"
SA = "spark-wi"

# The design's constants, written out.
VOLUME = "spark-identity-azure-token"
MOUNT_PATH = "/var/run/secrets/spark-identity/azure"
TOKEN_FILE = "/var/run/secrets/spark-identity/azure/azure-identity-token"
WI_PROVIDER = "org.apache.hadoop.fs.azurebfs.oauth2.WorkloadIdentityTokenProvider"
MSI_PROVIDER = "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider"
MOUNT = {"name": VOLUME, "mountPath": MOUNT_PATH, "readOnly": True}
AWI_MOUNT = {"name": "azure-identity-token", "readOnly": True, "mountPath": "/var/run/secrets/azure/tokens"}
AWI_TOKEN_FILE = "/var/run/secrets/azure/tokens/azure-identity-token"


def volume(expiration=3600):
    return {"name": VOLUME, "projected": {"sources": [{"serviceAccountToken": {
        "audience": "api://AzureADTokenExchange", "expirationSeconds": expiration, "path": "azure-identity-token"}}]}}


def wi_flags(client=CLIENT_WI, tenant=TENANT):
    return ["-Dio.netty.tryReflectionSetAccessible=true",
            "-Dspark.hadoop.fs.azure.account.auth.type=OAuth",
            f"-Dspark.hadoop.fs.azure.account.oauth.provider.type={WI_PROVIDER}",
            f"-Dspark.hadoop.fs.azure.account.oauth2.client.id={client}",
            f"-Dspark.hadoop.fs.azure.account.oauth2.msi.tenant={tenant}",
            f"-Dspark.hadoop.fs.azure.account.oauth2.token.file={TOKEN_FILE}"]


def wi_env(client=CLIENT_WI, tenant=TENANT, authority=AUTHORITY):
    return {"AZURE_CLIENT_ID": client, "AZURE_TENANT_ID": tenant,
            "AZURE_FEDERATED_TOKEN_FILE": TOKEN_FILE, "AZURE_AUTHORITY_HOST": authority}


WI_FIXTURES = ["spark40-driver.json", "spark40-executor.json", "spark40-executor-default-sa.json",
               "spark40-driver-azure-wi.json", "spark40-driver-template-sidecar.json"]
WI_NAMESPACES = ["team-wi", "team-wi-deny", "team-wi-audit", "team-wi-lake"]


def policy() -> dict:
    return model.load_policy(WI_POLICY)


def rule(ns):
    return model.rule_for(policy(), ns)


# ---------------------------------------------------------------------------
# The server and the checks
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wi_server(certs, workdir):
    s = Server("workload-identity", certs, WI_POLICY, workdir)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture
def wi(wi_server):
    return wi_server.client()


def review_in(name: str, ns: str | None = None, sa: str | None | bool = False, labels: dict | None = None) -> dict:
    """A fixture with a fresh uid, moved to `ns`, with its service account
    set to `sa` (None: none at all), labels changed (None values remove)."""
    rv = in_namespace(load_fixture(name), ns) if ns else fresh(load_fixture(name))
    pod = rv["request"]["object"]
    if sa is not False:
        for k in ("serviceAccountName", "serviceAccount"):
            if sa is None:
                pod["spec"].pop(k, None)
            else:
                pod["spec"][k] = sa
    for k, v in (labels or {}).items():
        if v is None:
            pod["metadata"]["labels"].pop(k, None)
        else:
            pod["metadata"]["labels"][k] = v
    return rv


def as_stored(pod: dict) -> dict:
    """The pod after the API server's defaulting of what we added (the
    projected volume's defaultMode), as a reinvocation would post it."""
    out = copy.deepcopy(pod)
    for v in out["spec"].get("volumes") or []:
        if v.get("name") == VOLUME and isinstance(v.get("projected"), dict):
            v["projected"].setdefault("defaultMode", 420)
    return out


def assert_valid_pod(pod: dict):
    """What the API server's validation would insist on, for what we touch."""
    vols = [v["name"] for v in pod["spec"].get("volumes") or []]
    assert len(vols) == len(set(vols)), f"duplicate volume names: {vols}"
    for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]:
        names = [e["name"] for e in c.get("env") or []]
        assert len(names) == len(set(names)), f"duplicate env names in {c['name']}: {names}"
        paths = [m["mountPath"] for m in c.get("volumeMounts") or []]
        assert len(paths) == len(set(paths)), f"duplicate mountPaths in {c['name']}: {paths}"
        for m in c.get("volumeMounts") or []:
            assert m["name"] in vols, f"{c['name']} mounts {m['name']}, which is not a volume of the pod"


def _compare_keyed(xa: dict, xe: dict, xo: dict, field: str, key: str, where: str, norm=lambda v: v):
    """Compares xa[field] with xe[field] as maps by `key` (positions of new
    entries are free), checks that entries not changed keep their relative
    order, and removes the field from xa and xe."""
    la, le, lo = xa.pop(field, None) or [], xe.pop(field, None) or [], xo.get(field) or []
    ka = [x[key] for x in la]
    assert len(ka) == len(set(ka)), f"{where}.{field}: duplicate {key}s {ka}"
    da = {x[key]: norm(x) for x in la}
    de = {x[key]: norm(x) for x in le}
    if da != de:
        lines = [f"{where}.{field} differs:"]
        for k in sorted(set(da) | set(de)):
            if da.get(k) != de.get(k):
                lines.append(f"  {k}: got {da.get(k)!r}\n  {' ' * len(k)}  want {de.get(k)!r}")
        raise AssertionError("\n".join(lines))
    do = {x[key]: norm(x) for x in lo}
    changed = {k for k, v in de.items() if do.get(k) != v}
    kept_a = [k for k in ka if k not in changed]
    kept_o = [x[key] for x in lo if x[key] not in changed and x[key] in de]
    assert kept_a == kept_o, f"{where}.{field}: untouched entries moved: {kept_a} vs {kept_o}"


def assert_pods_match(actual: dict, expected: dict, original: dict):
    a, e, o = copy.deepcopy(actual), copy.deepcopy(expected), original
    for kind in ("initContainers", "containers"):
        ca, ce, co = a["spec"].get(kind) or [], e["spec"].get(kind) or [], o["spec"].get(kind) or []
        assert [c["name"] for c in ca] == [c["name"] for c in ce], kind
        for x, y, z in zip(ca, ce, co):
            _compare_keyed(x, y, z, "env", "name", f"{kind}[{x['name']}]")
            _compare_keyed(x, y, z, "volumeMounts", "mountPath", f"{kind}[{x['name']}]")
    _compare_keyed(a["spec"], e["spec"], o["spec"], "volumes", "name", "spec", norm=model.without_api_defaults)
    assert a == e, _first_diff(a, e)


def _matches_all(text: str, patterns: list[str]) -> bool:
    return all(re.search(p, text) for p in patterns)


def check(client, rv: dict, pol: dict | None = None) -> tuple[dict, dict]:
    """Posts `rv`, checks the answer against the oracle; when patched, checks
    the patched pod and that a reinvocation (as posted, and after the API
    server's defaulting) gets no patch. Returns (response, resulting pod)."""
    pol = pol or policy()
    exp = model.expect(rv, pol)
    r = client.review(rv)["response"]
    obj = rv["request"]["object"]
    assert r["allowed"] is exp.allowed, f"allowed={r['allowed']}, want {exp.allowed} ({exp.decision}): {r}"
    if not exp.allowed:
        msg = r["status"]["message"]
        for s in exp.message_contains:
            assert s in msg, f"denial message {msg!r} should name {s!r}"
        if exp.message_any:
            assert any(_matches_all(msg, alt) for alt in exp.message_any), \
                f"denial message {msg!r} should match one of {exp.message_any}"
        return r, obj
    warnings = r.get("warnings") or []
    joined = "\n".join(warnings)
    if exp.warnings is True:
        assert warnings, f"expected warnings ({exp.decision}): {r}"
    if exp.warnings is False:
        assert not warnings, f"expected no warnings ({exp.decision}): {r}"
    for s in exp.warn_contains:
        assert s in joined, f"a warning should mention {s!r}: {warnings}"
    for p in exp.warn_patterns:
        assert re.search(p, joined), f"a warning should match {p!r}: {warnings}"
    for p in exp.no_warn_patterns:
        assert not re.search(p, joined), f"no warning should match {p!r}: {warnings}"
    if not exp.changed:
        assert "patch" not in r, f"expected no patch ({exp.decision}), got {decode_patch(r)}"
        return r, obj
    assert "patch" in r, f"expected a patch ({exp.decision}): {r}"
    patched = apply_response(obj, r)
    assert_valid_pod(patched)
    assert_pods_match(patched, exp.pod, obj)
    for again in (patched, as_stored(patched)):
        r2 = client.review(with_object(rv, again))["response"]
        assert r2["allowed"] is True, r2
        assert "patch" not in r2, f"a reinvocation should get no patch, got {decode_patch(r2)}"
    return r, patched


def opt_envs(container) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env") or [] if e["name"].startswith("SPARK_JAVA_OPT_")}


def container(pod, name) -> dict:
    for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise AssertionError(f"no container {name}")


def azure_env(c) -> dict:
    return {n: e.get("value") for n, e in env_of(c).items() if n.startswith("AZURE_")}


def wi_volume_of(pod) -> dict:
    vs = [v for v in pod["spec"]["volumes"] if v["name"] == VOLUME]
    assert len(vs) == 1, pod["spec"]["volumes"]
    return vs[0]


# ---------------------------------------------------------------------------
# The oracle over every fixture and namespace
# ---------------------------------------------------------------------------

def test_the_policy_is_what_these_tests_assume():
    r = rule("team-wi")
    assert r.workload_identity and r.identity is None and r.service_account == SA
    assert (r.client_id, r.tenant_id, r.authority_host, r.token_expiration) == (CLIENT_WI, TENANT, AUTHORITY, 3600)
    assert r.flags == wi_flags()
    assert not rule("team-a").workload_identity
    p = run_bin("check-policy", WI_POLICY)
    assert p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")


@pytest.mark.parametrize("ns", WI_NAMESPACES)
@pytest.mark.parametrize("name", WI_FIXTURES)
def test_spark40_fixtures_match_the_design(wi, name, ns):
    check(wi, review_in(name, ns))


@pytest.mark.parametrize("ns", ["team-a", "team-x"])
@pytest.mark.parametrize("name", WI_FIXTURES + ["spark35-driver.json", "spark35-executor.json"])
def test_pod_identity_and_unmatched_namespaces_of_the_same_server(wi, name, ns):
    check(wi, review_in(name, ns))


@pytest.mark.parametrize("ns", WI_NAMESPACES)
@pytest.mark.parametrize("name", ["spark35-driver.json", "spark35-pyspark-driver.json", "spark35-executor.json",
                                  "spark33-executor.json", "spark24-executor.json", "spark35-driver-valuefrom.json",
                                  "spark35-driver-template-sidecar-first.json", "spark35-driver-foreign-identity.json"])
def test_older_spark_pods_in_workload_identity_namespaces(wi, name, ns):
    # With the federated service account, and as they come (spark: refused
    # drivers, executors refused as not default).
    check(wi, review_in(name, ns, sa=SA))
    check(wi, review_in(name, ns))


# ---------------------------------------------------------------------------
# What a Spark pod gets, value by value
# ---------------------------------------------------------------------------

def test_driver_gets_azure_env_token_volume_mount_and_hadoop_flags(wi):
    rv = review_in("spark40-driver.json")
    pod = rv["request"]["object"]
    r, out = check(wi, rv)
    assert "patch" in r
    c = spark_container(out)
    env = env_of(c)
    assert azure_env(c) == wi_env()
    assert env["JAVA_HOME"]["value"] == "/opt/java/openjdk"
    assert env["SPARK_SUBMIT_OPTS"]["value"] == " ".join(wi_flags())
    assert not [n for n in env if n.startswith("SPARK_JAVA_OPT_") or n == "JAVA_TOOL_OPTIONS"]
    assert [m for m in c["volumeMounts"] if m["name"] == VOLUME] == [MOUNT]
    assert wi_volume_of(out) == volume()
    # Nothing of pod identity; nothing else changed.
    assert out["metadata"]["labels"] == pod["metadata"]["labels"]
    assert "aadpodidbinding" not in out["metadata"]["labels"]
    assert MSI_PROVIDER not in json.dumps(out)
    assert "msi.authority" not in env["SPARK_SUBMIT_OPTS"]["value"]
    assert [v for v in out["spec"]["volumes"] if v["name"] != VOLUME] == pod["spec"]["volumes"]
    assert out["spec"]["serviceAccountName"] == out["spec"]["serviceAccount"] == SA
    assert not re.search(model.IMAGE_WARNING_RE, "\n".join(r.get("warnings") or []))
    for op in decode_patch(r):
        assert not op["path"].startswith("/metadata"), op


@pytest.mark.parametrize("name", ["spark40-executor.json", "spark40-executor-default-sa.json"])
def test_executor_gets_one_spark_java_opt_per_missing_flag(wi, name):
    rv = review_in(name)
    before = opt_envs(spark_container(rv["request"]["object"]))
    first_new = max(int(k.rsplit("_", 1)[1]) for k in before) + 1
    # Spark 4.0's own module options already carry the netty flag.
    assert "-Dio.netty.tryReflectionSetAccessible=true" in before.values()
    r, out = check(wi, rv)
    c = spark_container(out)
    after = opt_envs(c)
    assert {k: v for k, v in after.items() if k in before} == before
    added = {k: v for k, v in after.items() if k not in before}
    assert added == {f"SPARK_JAVA_OPT_{first_new + i}": f for i, f in enumerate(wi_flags()[1:])}
    assert azure_env(c) == wi_env()
    assert [m for m in c["volumeMounts"] if m["name"] == VOLUME] == [MOUNT]
    assert wi_volume_of(out) == volume()
    assert "SPARK_SUBMIT_OPTS" not in env_of(c)
    assert "aadpodidbinding" not in out["metadata"]["labels"]
    assert out["spec"]["serviceAccountName"] == out["spec"]["serviceAccount"] == SA


def test_both_modes_side_by_side_in_one_server(wi):
    # The same Spark 4.0 driver: pod identity in team-a, workload identity in team-wi.
    _, pi = check(wi, review_in("spark40-driver.json", "team-a"))
    _, wl = check(wi, review_in("spark40-driver.json", "team-wi"))
    pi_env, wl_env = env_of(spark_container(pi)), env_of(spark_container(wl))
    assert pi["metadata"]["labels"]["aadpodidbinding"] == "sparkaks"
    assert pi_env["SPARK_SUBMIT_OPTS"]["value"] == " ".join([
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Dspark.hadoop.fs.azure.account.auth.type=OAuth",
        f"-Dspark.hadoop.fs.azure.account.oauth.provider.type={MSI_PROVIDER}",
        f"-Dspark.hadoop.fs.azure.account.oauth2.client.id={CLIENT_A}",
        f"-Dspark.hadoop.fs.azure.account.oauth2.msi.tenant={TENANT}"])
    assert not azure_env(spark_container(pi))
    assert VOLUME not in [v["name"] for v in pi["spec"]["volumes"]]
    assert not any(m["name"] == VOLUME for m in spark_container(pi)["volumeMounts"])
    assert "aadpodidbinding" not in wl["metadata"]["labels"]
    assert wl_env["SPARK_SUBMIT_OPTS"]["value"] == " ".join(wi_flags())
    assert azure_env(spark_container(wl)) == wi_env()
    # Interleaved, the answers do not leak into each other.
    for i in range(6):
        ns = ("team-a", "team-wi")[i % 2]
        _, out = check(wi, review_in("spark40-executor.json", ns))
        assert ("aadpodidbinding" in out["metadata"]["labels"]) == (ns == "team-a")
        assert bool(azure_env(spark_container(out))) == (ns == "team-wi")


def test_lake_namespace_tenant_authority_expiration_and_storage_accounts(wi):
    _, out = check(wi, review_in("spark40-driver.json", "team-wi-lake", sa="anything-goes"))
    c = spark_container(out)
    assert azure_env(c) == wi_env(CLIENT_LAKE, TENANT_LAKE, AUTHORITY_LAKE)
    assert wi_volume_of(out) == volume(7200)
    assert out["spec"]["serviceAccountName"] == "anything-goes"   # no serviceAccount in the rule: not checked
    suffix = ".lakeprod.dfs.core.windows.net"
    assert env_of(c)["SPARK_SUBMIT_OPTS"]["value"] == " ".join([
        "-Dio.netty.tryReflectionSetAccessible=true",
        f"-Dspark.hadoop.fs.azure.account.auth.type{suffix}=OAuth",
        f"-Dspark.hadoop.fs.azure.account.oauth.provider.type{suffix}={WI_PROVIDER}",
        f"-Dspark.hadoop.fs.azure.account.oauth2.client.id{suffix}={CLIENT_LAKE}",
        f"-Dspark.hadoop.fs.azure.account.oauth2.msi.authority{suffix}={AUTHORITY_LAKE}",
        f"-Dspark.hadoop.fs.azure.account.oauth2.msi.tenant{suffix}={TENANT_LAKE}",
        f"-Dspark.hadoop.fs.azure.account.oauth2.token.file{suffix}={TOKEN_FILE}"])


# ---------------------------------------------------------------------------
# Reinvocation and what is already there
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("ns", ["team-wi", "team-wi-lake", "team-a"])
@pytest.mark.parametrize("name", WI_FIXTURES)
def test_reinvocation_gets_no_patch(wi, name, ns):
    rv = review_in(name, ns)
    r = wi.review(rv)["response"]
    assert r["allowed"] is True, r
    assert "patch" in r, f"{name} in {ns}: a first pass must change something"
    out = apply_response(rv["request"]["object"], r)
    for again in (out, as_stored(out)):
        r2 = wi.review(with_object(rv, again))["response"]
        assert r2["allowed"] is True and "patch" not in r2, (decode_patch(r2) if "patch" in r2 else r2)


def test_settings_already_there_with_the_same_content_are_left_alone(wi):
    rv = review_in("spark40-driver.json")
    pod = rv["request"]["object"]
    c = spark_container(pod)
    c["env"] += [{"name": "AZURE_TENANT_ID", "value": TENANT}, {"name": "AZURE_CLIENT_ID", "value": CLIENT_WI}]
    c["volumeMounts"].insert(0, dict(MOUNT))
    vol = volume()
    vol["projected"]["defaultMode"] = 420
    pod["spec"]["volumes"].insert(1, vol)
    r, out = check(wi, rv)
    for op in decode_patch(r):
        assert VOLUME not in json.dumps(op), f"our volume/mount is there already: {op}"
        assert "AZURE_TENANT_ID" not in json.dumps(op) and "AZURE_CLIENT_ID" not in json.dumps(op), op
    assert out["spec"]["volumes"][1] == vol
    assert azure_env(spark_container(out)) == wi_env()


def test_settings_with_other_content_are_corrected(wi):
    rv = review_in("spark40-driver.json")
    pod = rv["request"]["object"]
    c = spark_container(pod)
    c["env"] += [{"name": "AZURE_TENANT_ID", "value": TENANT_LAKE},
                 {"name": "AZURE_AUTHORITY_HOST", "value": AUTHORITY_LAKE},
                 {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/tmp/token"}]
    c["volumeMounts"].append({"name": VOLUME, "mountPath": "/somewhere/else"})
    pod["spec"]["volumes"].append(volume(86400))
    r, out = check(wi, rv)
    warnings = "\n".join(r["warnings"])
    for name in ("AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST", "AZURE_FEDERATED_TOKEN_FILE"):
        assert name in warnings, r["warnings"]
    sc = spark_container(out)
    assert azure_env(sc) == wi_env()
    assert [m for m in sc["volumeMounts"] if m["name"] == VOLUME] == [MOUNT]
    assert model.without_api_defaults(wi_volume_of(out)) == volume()


def test_identity_env_from_valuefrom_is_left_alone_with_a_warning(wi):
    rv = review_in("spark40-driver.json")
    ref = {"name": "AZURE_CLIENT_ID", "valueFrom": {"configMapKeyRef": {"name": "lake-identity", "key": "clientId"}}}
    spark_container(rv["request"]["object"])["env"].append(copy.deepcopy(ref))
    r, out = check(wi, rv)
    assert env_of(spark_container(out))["AZURE_CLIENT_ID"] == ref
    assert any("AZURE_CLIENT_ID" in w for w in r["warnings"]), r["warnings"]


@pytest.mark.parametrize("ns, allowed", [("team-wi", True), ("team-wi-deny", False)])
def test_another_client_id_is_replaced_or_refused_as_on_conflict_says(wi, ns, allowed):
    client = rule(ns).client_id
    rv = review_in("spark40-driver.json", ns)
    spark_container(rv["request"]["object"])["env"].append({"name": "AZURE_CLIENT_ID", "value": CLIENT_LAKE})
    r, out = check(wi, rv)
    assert r["allowed"] is allowed
    if allowed:
        assert azure_env(spark_container(out))["AZURE_CLIENT_ID"] == client
        assert any("AZURE_CLIENT_ID" in w for w in r["warnings"]), r["warnings"]
    else:
        assert "AZURE_CLIENT_ID" in r["status"]["message"], r["status"]


def test_another_volume_mounted_at_our_path_is_refused(wi):
    rv = review_in("spark40-driver.json")
    pod = rv["request"]["object"]
    pod["spec"]["volumes"].append({"name": "tokens", "emptyDir": {}})
    spark_container(pod)["volumeMounts"].append({"name": "tokens", "mountPath": MOUNT_PATH})
    r, _ = check(wi, rv)
    assert r["allowed"] is False and MOUNT_PATH in r["status"]["message"], r
    r, _ = check(wi, in_namespace(rv, "team-wi-audit"))
    assert r["allowed"] is True and "patch" not in r and r.get("warnings"), r


# ---------------------------------------------------------------------------
# Pods that Azure Workload Identity's own webhook mutated first
# ---------------------------------------------------------------------------

def test_pod_mutated_by_azure_workload_identity_webhook(wi):
    rv = review_in("spark40-driver-azure-wi.json")
    pod = rv["request"]["object"]
    before = spark_container(pod)
    assert azure_env(before)["AZURE_FEDERATED_TOKEN_FILE"] == AWI_TOKEN_FILE
    r, out = check(wi, rv)
    assert_valid_pod(out)
    c = spark_container(out)
    assert azure_env(c) == wi_env()
    assert [e["name"] for e in c["env"]].count("AZURE_FEDERATED_TOKEN_FILE") == 1
    assert any("AZURE_FEDERATED_TOKEN_FILE" in w for w in r["warnings"]), r["warnings"]
    # Its volume and mount stay, ours are added beside them.
    awi_vol = next(v for v in pod["spec"]["volumes"] if v["name"] == "azure-identity-token")
    assert awi_vol in out["spec"]["volumes"]
    assert AWI_MOUNT in c["volumeMounts"] and MOUNT in c["volumeMounts"]
    assert wi_volume_of(out) == volume()
    assert out["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert env_of(c)["SPARK_SUBMIT_OPTS"]["value"] == " ".join(wi_flags())


def test_pod_mutated_by_azure_workload_identity_webhook_with_another_identity(wi):
    # The service account is annotated with another client id than the
    # policy's: corrected under override, refused under deny.
    rv = review_in("spark40-driver-azure-wi.json")
    env_of(spark_container(rv["request"]["object"]))["AZURE_CLIENT_ID"]["value"] = CLIENT_LAKE
    r, out = check(wi, rv)
    assert azure_env(spark_container(out)) == wi_env()
    assert any("AZURE_CLIENT_ID" in w for w in r["warnings"]), r["warnings"]
    r, _ = check(wi, review_in("spark40-driver-azure-wi.json", "team-wi-deny"))
    assert r["allowed"] is False and "AZURE_CLIENT_ID" in r["status"]["message"], r


def azure_wi_webhook(pod: dict, client_id: str) -> dict:
    """What Azure Workload Identity's webhook does (every container and init
    container; env names already present are left as they are), with the
    API server's defaulting of the patched pod."""
    pod = copy.deepcopy(pod)
    for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]:
        have = {e["name"] for e in c.get("env") or []}
        for name, value in (("AZURE_CLIENT_ID", client_id), ("AZURE_TENANT_ID", TENANT),
                            ("AZURE_FEDERATED_TOKEN_FILE", AWI_TOKEN_FILE), ("AZURE_AUTHORITY_HOST", AUTHORITY)):
            if name not in have:
                c.setdefault("env", []).append({"name": name, "value": value})
        c.setdefault("volumeMounts", []).append(dict(AWI_MOUNT))
    pod["spec"]["volumes"].append({"name": "azure-identity-token", "projected": {"sources": [{"serviceAccountToken": {
        "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600, "path": "azure-identity-token"}}],
        "defaultMode": 420}})
    pod["metadata"]["labels"]["azure.workload.identity/use"] = "true"
    return as_stored(pod)


@pytest.mark.parametrize("ns", ["team-wi", "team-wi-lake"])
def test_azure_workload_identity_pod_with_sidecars(wi, ns):
    # Its webhook put its env and mount in every container; ours go into the
    # Spark container and the rule's extraContainers only.
    rv = review_in("spark40-driver-template-sidecar.json", ns)
    rv["request"]["object"] = azure_wi_webhook(rv["request"]["object"], CLIENT_WI)
    pod = rv["request"]["object"]
    r, out = check(wi, rv)
    assert_valid_pod(out)
    targets = {"spark-kubernetes-driver"} | ({"fetch-deps", "log-shipper"} if ns == "team-wi" else set())
    want = wi_env() if ns == "team-wi" else wi_env(CLIENT_LAKE, TENANT_LAKE, AUTHORITY_LAKE)
    for name in ("fetch-deps", "log-shipper", "spark-kubernetes-driver"):
        c = container(out, name)
        assert AWI_MOUNT in c["volumeMounts"]
        if name in targets:
            assert azure_env(c) == want, name
            assert MOUNT in c["volumeMounts"], name
        else:
            assert c == container(pod, name)
    assert [v["name"] for v in out["spec"]["volumes"]].count("azure-identity-token") == 1
    assert wi_volume_of(out) == volume(3600 if ns == "team-wi" else 7200)


def test_token_file_and_authority_are_replaced_even_under_deny(wi):
    # Only another client or tenant id is a conflict; Azure Workload
    # Identity's token file (and another authority) are simply corrected.
    rv = review_in("spark40-driver-azure-wi.json", "team-wi-deny")
    env = env_of(spark_container(rv["request"]["object"]))
    env["AZURE_CLIENT_ID"]["value"] = CLIENT_DENY
    env["AZURE_AUTHORITY_HOST"]["value"] = AUTHORITY_LAKE
    r, out = check(wi, rv)
    assert r["allowed"] is True
    assert azure_env(spark_container(out)) == wi_env(CLIENT_DENY)
    for name in ("AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"):
        assert any(name in w for w in r["warnings"]), r["warnings"]


@pytest.mark.parametrize("name", ["spark40-driver.json", "spark40-executor.json",
                                  "spark40-driver-template-sidecar.json"])
def test_azure_workload_identity_webhook_called_after_ours(wi, name):
    # Reinvoked after Azure Workload Identity's webhook ran on our result
    # (with another client id in its service-account annotation, which it
    # does not apply over ours): nothing more to do.
    rv = review_in(name)
    _, ours = check(wi, rv)
    theirs = azure_wi_webhook(ours, CLIENT_LAKE)
    assert_valid_pod(theirs)
    r = wi.review(with_object(rv, theirs))["response"]
    assert r["allowed"] is True and "patch" not in r, (decode_patch(r) if "patch" in r else r)


# ---------------------------------------------------------------------------
# Service accounts
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("sa", ["spark", "default", None])
def test_driver_with_another_service_account_is_refused_naming_the_expected_one(wi, sa):
    r, _ = check(wi, review_in("spark40-driver.json", sa=sa))
    assert r["allowed"] is False
    msg = r["status"]["message"]
    assert SA in msg and "spark.kubernetes.authenticate.driver.serviceAccountName" in msg, msg


def test_driver_service_account_from_the_deprecated_field(wi):
    rv = review_in("spark40-driver.json")
    del rv["request"]["object"]["spec"]["serviceAccountName"]
    r, _ = check(wi, rv)
    assert r["allowed"] is True


def test_executor_with_the_default_service_account_is_corrected_under_override(wi):
    rv = review_in("spark40-executor-default-sa.json")
    r, out = check(wi, rv)
    assert r["allowed"] is True
    assert out["spec"]["serviceAccountName"] == out["spec"]["serviceAccount"] == SA
    assert any(SA in w for w in r["warnings"]), r["warnings"]
    assert azure_env(spark_container(out)) == wi_env()


def test_executor_without_any_service_account_gets_service_account_name_only(wi):
    rv = review_in("spark40-executor-default-sa.json", sa=None)
    r, out = check(wi, rv)
    assert out["spec"]["serviceAccountName"] == SA
    assert "serviceAccount" not in out["spec"]


def test_executor_with_the_default_service_account_is_refused_under_deny(wi):
    r, _ = check(wi, review_in("spark40-executor-default-sa.json", "team-wi-deny"))
    assert r["allowed"] is False


@pytest.mark.parametrize("ns", ["team-wi", "team-wi-deny"])
def test_executor_with_another_service_account_is_refused(wi, ns):
    r, _ = check(wi, review_in("spark40-executor.json", ns, sa="spark"))
    assert r["allowed"] is False


def test_service_accounts_are_not_checked_without_service_account_in_the_rule(wi):
    for name, sa in (("spark40-driver.json", "spark"), ("spark40-executor.json", "default")):
        r, out = check(wi, review_in(name, "team-wi-lake", sa=sa))
        assert r["allowed"] is True and out["spec"]["serviceAccountName"] == sa


# ---------------------------------------------------------------------------
# aadpodidbinding in a workload-identity namespace
# ---------------------------------------------------------------------------

def test_spark_pod_claiming_another_identity_loses_the_label_under_override(wi):
    rv = review_in("spark40-driver.json", labels={"aadpodidbinding": "team-b-spark"})
    r, out = check(wi, rv)
    assert "aadpodidbinding" not in out["metadata"]["labels"]
    assert {"op": "remove", "path": "/metadata/labels/aadpodidbinding"} in decode_patch(r)
    assert any("team-b-spark" in w for w in r["warnings"]), r["warnings"]


def test_spark_pod_claiming_another_identity_is_refused_under_deny(wi):
    r, _ = check(wi, review_in("spark40-driver.json", "team-wi-deny", labels={"aadpodidbinding": "team-b-spark"}))
    assert r["allowed"] is False and "team-b-spark" in r["status"]["message"]


@pytest.mark.parametrize("ns, claim", [("team-wi", "team-wi-api"), ("team-wi-lake", "lake-legacy")])
def test_spark_pod_claiming_an_identity_it_may_use_keeps_it(wi, ns, claim):
    r, out = check(wi, review_in("spark40-executor.json", ns, labels={"aadpodidbinding": claim}))
    assert out["metadata"]["labels"]["aadpodidbinding"] == claim
    assert not any(op["path"].startswith("/metadata/labels") for op in decode_patch(r))


@pytest.mark.parametrize("ns, claim, allowed", [
    ("team-wi", "team-wi-api", True), ("team-wi", "sparkaks", False), ("team-wi", "lake-legacy", False),
    ("team-wi-lake", "lake-legacy", True), ("team-a", "lake-legacy", False), ("team-x", "team-wi-api", False),
    ("team-wi-audit", "sparkaks", False), ("team-wi-audit", "never-granted", True), ("team-x", "never-granted", True)])
def test_non_spark_pods_claiming_identities(wi, ns, claim, allowed):
    rv = review_in("api-pod-allowed.json", ns, labels={"aadpodidbinding": claim})
    r, _ = check(wi, rv)
    assert r["allowed"] is allowed and "patch" not in r, r
    if not allowed:
        assert claim in r["status"]["message"]
    r, _ = check(wi, review_in("nginx-pod.json", ns))
    assert r["allowed"] is True and "patch" not in r


# ---------------------------------------------------------------------------
# extraContainers
# ---------------------------------------------------------------------------

def test_extra_containers_get_env_and_mount_but_no_jvm_flags(wi):
    rv = review_in("spark40-driver-template-sidecar.json")
    pod = rv["request"]["object"]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["fetch-deps"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["log-shipper", "spark-kubernetes-driver"]
    r, out = check(wi, rv)
    for name in ("fetch-deps", "log-shipper"):
        c, c0 = container(out, name), container(pod, name)
        assert "env" not in c0
        assert len(c["env"]) == 4 and {e["name"]: e["value"] for e in c["env"]} == wi_env(), c["env"]
        assert [m for m in c["volumeMounts"] if m != MOUNT] == c0["volumeMounts"]
        assert c["volumeMounts"].count(MOUNT) == 1
        assert {k: v for k, v in c.items() if k not in ("env", "volumeMounts")} == \
            {k: v for k, v in c0.items() if k not in ("env", "volumeMounts")}
    sc = container(out, "spark-kubernetes-driver")
    assert azure_env(sc) == wi_env() and MOUNT in sc["volumeMounts"]
    assert env_of(sc)["SPARK_SUBMIT_OPTS"]["value"] == " ".join(wi_flags())
    assert env_of(sc)["JAVA_HOME"]["value"] == "/opt/java/openjdk"
    # Whole lists where there were none (the patch never adds under a missing parent).
    ops = decode_patch(r)
    assert {"op": "add", "path": "/spec/initContainers/0/env"} in [{k: o[k] for k in ("op", "path")} for o in ops]
    assert [v["name"] for v in out["spec"]["volumes"]].count(VOLUME) == 1


def test_extra_containers_only_where_the_rule_names_them(wi):
    # team-wi-lake has no extraContainers: only the Spark container.
    rv = review_in("spark40-driver-template-sidecar.json", "team-wi-lake")
    pod = rv["request"]["object"]
    _, out = check(wi, rv)
    assert container(out, "fetch-deps") == container(pod, "fetch-deps")
    assert container(out, "log-shipper") == container(pod, "log-shipper")
    assert azure_env(container(out, "spark-kubernetes-driver")) == wi_env(CLIENT_LAKE, TENANT_LAKE, AUTHORITY_LAKE)


# ---------------------------------------------------------------------------
# Audit mode, dry-run, Spark 3 images, what is not a CREATE
# ---------------------------------------------------------------------------

AUDIT_SUBJECTS = ("AZURE_", VOLUME, MOUNT_PATH)


@pytest.mark.parametrize("name", WI_FIXTURES)
def test_audit_namespace_allows_unchanged_with_warnings(wi, name):
    r, _ = check(wi, review_in(name, "team-wi-audit"))
    assert r["allowed"] is True and "patch" not in r
    assert any(s in w for w in r["warnings"] for s in AUDIT_SUBJECTS), r["warnings"]


@pytest.mark.parametrize("change", [dict(sa="spark"), dict(labels={"aadpodidbinding": "team-b-spark"})])
def test_audit_namespace_warns_instead_of_refusing(wi, change):
    r, _ = check(wi, review_in("spark40-driver.json", "team-wi-audit", **change))
    assert r["allowed"] is True and "patch" not in r and r["warnings"]
    subject = "spark-wi" if "sa" in change else "team-b-spark"
    assert any(subject in w for w in r["warnings"]), r["warnings"]


@pytest.mark.parametrize("case", [
    ("spark40-driver.json", "team-wi", {}),                       # mutated
    ("spark40-executor-default-sa.json", "team-wi", {}),          # service account corrected
    ("spark40-driver.json", "team-wi", dict(sa="spark")),         # refused
    ("spark40-driver-azure-wi.json", "team-wi-deny", {}),         # refused
    ("spark40-driver.json", "team-wi-audit", {}),                 # audit
    ("spark35-driver.json", "team-wi", dict(sa=SA)),              # warned
])
def test_dry_run_is_answered_exactly_like_a_real_request(wi, case):
    name, ns, kw = case
    rv = review_in(name, ns, **kw)
    real = wi.review(rv)
    dry = copy.deepcopy(rv)
    dry["request"]["dryRun"] = True
    assert wi.review(dry) == real


@pytest.mark.parametrize("name, image", [("spark35-driver.json", "3.5.1"), ("spark35-executor.json", "3.5.1"),
                                         ("spark33-executor.json", "v3.3.4")])
def test_spark3_images_get_a_warning_and_are_still_mutated(wi, name, image):
    rv = review_in(name, "team-wi", sa=SA)
    assert image in spark_container(rv["request"]["object"])["image"]
    r, out = check(wi, rv)
    assert r["allowed"] is True and "patch" in r
    assert re.search(model.IMAGE_WARNING_RE, "\n".join(r["warnings"])), r["warnings"]
    assert azure_env(spark_container(out)) == wi_env()


def test_spark4_image_gets_no_hadoop_warning(wi):
    for name in WI_FIXTURES:
        r = wi.review(review_in(name, "team-wi-lake"))["response"]
        assert not re.search(model.IMAGE_WARNING_RE, "\n".join(r.get("warnings") or [])), (name, r.get("warnings"))


def test_update_in_a_workload_identity_namespace_is_allowed_unchanged(wi):
    rv = review_in("spark35-driver-update.json", "team-wi")
    r = wi.review(rv)["response"]
    assert r["allowed"] is True and "patch" not in r, r


def test_decisions_are_recorded(wi, wi_server):
    rv = review_in("spark40-driver.json")
    r = wi.review(rv)["response"]
    assert r["auditAnnotations"]["decision"] == "mutated" and r["auditAnnotations"]["rule"] == "team-wi", r
    denied = review_in("spark40-driver.json", sa="spark")
    r2 = wi.review(denied)["response"]
    assert r2["auditAnnotations"]["decision"] == "denied", r2

    def line(uid):
        for l in wi_server.stderr_path.read_text(errors="replace").splitlines():
            if l.startswith("{") and f'"uid":"{uid}"' in l:
                return json.loads(l)
        return None

    deadline = time.monotonic() + 10
    while (line(rv["request"]["uid"]) is None or line(denied["request"]["uid"]) is None) and time.monotonic() < deadline:
        time.sleep(0.05)
    d = line(rv["request"]["uid"])
    assert d and d["rule"] == "team-wi" and d["decision"] == "mutated" and d["mode"] == "enforce", d
    assert d["patch"] == decode_patch(r), d
    d2 = line(denied["request"]["uid"])
    assert d2 and d2["decision"] == "denied", d2


# ---------------------------------------------------------------------------
# Namespace annotations (mutate --namespace-annotations)
# ---------------------------------------------------------------------------

ANNOTATION_POLICY = """defaults:
  tenantId: 6513270e-269e-4d37-b2a7-4de452e6b438
namespaceAnnotations: true
"""


def test_annotations_give_a_namespace_workload_identity(tmp_path):
    pol_path = tmp_path / "annotations.yaml"
    pol_path.write_text(ANNOTATION_POLICY)
    pol = model.load_policy(pol_path)
    ann = {"spark-identity.io/auth": "workloadIdentity", "spark-identity.io/client-id": CLIENT_WI,
           "spark-identity.io/service-account": SA}
    flag = ",".join(f"{k}={v}" for k, v in ann.items())
    for name, sa, allowed in (("spark40-driver.json", SA, True), ("spark40-driver.json", "spark", False)):
        rv = review_in(name, "team-y", sa=sa)
        p = run_bin("mutate", "--policy", pol_path, "--namespace-annotations", flag, "-", input=json.dumps(rv).encode())
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        r = json.loads(p.stdout)["response"]
        exp = model.rule_for(pol, "team-y", annotations=ann)
        assert exp.workload_identity and exp.service_account == SA
        assert r["allowed"] is allowed, r
        if allowed:
            out = apply_response(rv["request"]["object"], r)
            want = model.mutate_wi_pod(rv["request"]["object"], exp)
            assert not want.deny
            assert_pods_match(out, want.pod, rv["request"]["object"])
            assert azure_env(spark_container(out)) == wi_env()
        else:
            assert SA in r["status"]["message"]


# ---------------------------------------------------------------------------
# check-policy and explain
# ---------------------------------------------------------------------------

def block(out: str, ns: str) -> str:
    """The lines check-policy prints for namespace `ns`."""
    m = re.search(rf"^{re.escape(ns)}:\n((?:[ \t].*\n?|\n)*?)(?=^\S|\Z)", out, re.M)
    assert m, f"no block for {ns} in:\n{out}"
    return m.group(1)


def test_check_policy_shows_workload_identity_rules():
    p = run_bin("check-policy", WI_POLICY)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    wi_block = block(out, "team-wi")
    for s in ["workloadIdentity", SA, CLIENT_WI, TENANT, AUTHORITY, "3600", "fetch-deps", "log-shipper",
              f"-Dspark.hadoop.fs.azure.account.oauth.provider.type={WI_PROVIDER}",
              f"-Dspark.hadoop.fs.azure.account.oauth2.token.file={TOKEN_FILE}",
              f"-Dspark.hadoop.fs.azure.account.oauth2.client.id={CLIENT_WI}"]:
        assert s in wi_block, f"{s!r} not shown for team-wi:\n{wi_block}"
    assert MSI_PROVIDER not in wi_block
    lake = block(out, "team-wi-lake")
    for s in ["workloadIdentity", CLIENT_LAKE, TENANT_LAKE, AUTHORITY_LAKE, "7200", "lake-legacy"]:
        assert s in lake, f"{s!r} not shown for team-wi-lake:\n{lake}"
    a = block(out, "team-a")
    assert "sparkaks" in a and MSI_PROVIDER in a and "workloadIdentity" not in a


WI_HEAD = """defaults:
  tenantId: 6513270e-269e-4d37-b2a7-4de452e6b438
namespaces:
  team-a:
    identity: sparkaks
  team-wi:
    auth: workloadIdentity
    clientId: 3c9e1b7d-4a2f-4e8b-9d61-5f0a2c7e8b94
    serviceAccount: spark-wi
"""


def _insert(text: str, after_line: int, new: str) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(lines[:after_line] + [new] + lines[after_line:])


BAD_WI = {
    # name: (text, line(s) of the error, what the message must say). A key
    # that the entry's auth does not allow: at the key or at the entry (the
    # design does not say which; auth may come from defaults).
    "missing-client-id": (WI_HEAD.replace("    clientId: 3c9e1b7d-4a2f-4e8b-9d61-5f0a2c7e8b94\n", ""), (6, 7),
                          "needs clientId"),
    "missing-tenant-id": ("namespaces:\n  team-wi:\n    auth: workloadIdentity\n"
                          "    clientId: 3c9e1b7d-4a2f-4e8b-9d61-5f0a2c7e8b94\n", (2, 3), "needs tenantId"),
    "token-expiration-too-short": (WI_HEAD + "    tokenExpirationSeconds: 3599\n", 10, "tokenExpirationSeconds"),
    "token-expiration-too-long": (WI_HEAD + "    tokenExpirationSeconds: 86401\n", 10, "tokenExpirationSeconds"),
    "token-expiration-not-a-number": (WI_HEAD + "    tokenExpirationSeconds: 1h\n", 10, "tokenExpirationSeconds"),
    "service-account-in-pod-identity": (_insert(WI_HEAD, 5, "    serviceAccount: spark\n"), (4, 6),
                                        "applies to auth: workloadIdentity only"),
    "extra-containers-in-pod-identity": (_insert(WI_HEAD, 5, "    extraContainers: [fetch-deps]\n"), (4, 6),
                                         "applies to auth: workloadIdentity only"),
    "token-expiration-in-pod-identity": (_insert(WI_HEAD, 5, "    tokenExpirationSeconds: 7200\n"), (4, 6),
                                         "applies to auth: workloadIdentity only"),
    "authority-in-pod-identity": (_insert(WI_HEAD, 5, "    authorityHost: https://login.microsoftonline.us/\n"), (4, 6),
                                  "applies to auth: workloadIdentity only"),
    "token-file-under-hadoop": (WI_HEAD + "    hadoop:\n      fs.azure.account.oauth2.token.file: /tmp/token\n", 11,
                                "fs.azure.account.oauth2.token.file"),
    "token-file-under-default-hadoop": (_insert(WI_HEAD, 2, "  hadoop: {fs.azure.account.oauth2.token.file: /t}\n"),
                                        3, "fs.azure.account.oauth2.token.file"),
    "bad-auth": (_insert(WI_HEAD, 5, "    auth: managedIdentity\n"), 6, "auth"),
    "authority-not-https": (WI_HEAD + "    authorityHost: http://login.microsoftonline.com/\n", 10, "authorityHost"),
    "service-account-not-a-name": (WI_HEAD.replace("serviceAccount: spark-wi", "serviceAccount: Spark_WI"), 9,
                                   "serviceAccount"),
    "pod-identity-without-identity": (_insert(WI_HEAD, 3, "  team-b:\n    clientId: 9531985d-5d9d-49f8-9818-e811892f902b\n"),
                                      (4, 5), "identity"),
}


@pytest.mark.parametrize("case", sorted(BAD_WI))
def test_check_policy_refuses_bad_workload_identity_rules(tmp_path, case):
    text, line, says = BAD_WI[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    p = run_bin("check-policy", path)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 1, f"exit {p.returncode}: {out}"
    found = [(int(m.group(1)), int(m.group(2)), m.group(3))
             for m in re.finditer(re.escape(str(path)) + r":(\d+):(\d+): (.*)", out)]
    assert found, f"no '{path}:LINE:COL: message' in: {out}"
    lines = line if isinstance(line, tuple) else (line,)
    assert any(l in lines and col >= 1 and says in msg for l, col, msg in found), \
        f"want an error at line {line} saying {says!r}: {out}"


VALID_WI = {
    "wi-keys-in-defaults-with-a-pod-identity-entry": (
        "defaults:\n  serviceAccount: spark-wi\n  authorityHost: https://login.microsoftonline.us/\n"
        "  tokenExpirationSeconds: 7200\n  extraContainers: [fetch-deps]\n"
        "namespaces:\n  team-a: {identity: sparkaks}\n"),
    "token-expiration-bounds": (
        "defaults:\n  tenantId: 6513270e-269e-4d37-b2a7-4de452e6b438\nnamespaces:\n"
        "  a: {auth: workloadIdentity, clientId: 3c9e1b7d-4a2f-4e8b-9d61-5f0a2c7e8b94, tokenExpirationSeconds: 3600}\n"
        "  b: {auth: workloadIdentity, clientId: 3c9e1b7d-4a2f-4e8b-9d61-5f0a2c7e8b94, tokenExpirationSeconds: 86400}\n"),
    "client-and-tenant-from-defaults": (
        "defaults:\n  tenantId: 6513270e-269e-4d37-b2a7-4de452e6b438\n  clientId: 3c9e1b7d-4a2f-4e8b-9d61-5f0a2c7e8b94\n"
        "namespaces:\n  a: {auth: workloadIdentity}\n  b: {identity: b-spark}\n"),
    "workload-identity-in-defaults": (
        "defaults:\n  auth: workloadIdentity\n  tenantId: 6513270e-269e-4d37-b2a7-4de452e6b438\n"
        "  clientId: 3c9e1b7d-4a2f-4e8b-9d61-5f0a2c7e8b94\n"
        "namespaces:\n  a: {serviceAccount: spark-wi}\n  b: {auth: podIdentity, identity: b-spark}\n"),
}


@pytest.mark.parametrize("case", sorted(VALID_WI))
def test_check_policy_accepts_valid_workload_identity_policies(tmp_path, case):
    path = tmp_path / f"{case}.yaml"
    path.write_text(VALID_WI[case])
    p = run_bin("check-policy", path)
    assert p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")


def test_explain_a_workload_identity_namespace():
    p = run_bin("explain", "--policy", WI_POLICY, "--namespace", "team-wi")
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    assert "team-wi, from its entry under namespaces" in out
    for s in ["workloadIdentity", SA, "fetch-deps", "log-shipper",
              f"AZURE_CLIENT_ID={CLIENT_WI}", f"AZURE_TENANT_ID={TENANT}",
              f"AZURE_FEDERATED_TOKEN_FILE={TOKEN_FILE}", f"AZURE_AUTHORITY_HOST={AUTHORITY}",
              MOUNT_PATH, "SPARK_SUBMIT_OPTS=" + " ".join(wi_flags()),
              f"SPARK_JAVA_OPT_5={wi_flags()[5]}"]:
        assert s in out, f"{s!r} not in:\n{out}"
    assert "aadpodidbinding=" not in out
    assert MSI_PROVIDER not in out
    p = run_bin("explain", "--policy", WI_POLICY, "--namespace", "team-wi-lake")
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0
    for s in [f"AZURE_AUTHORITY_HOST={AUTHORITY_LAKE}", "7200", "lake-legacy"]:
        assert s in out, f"{s!r} not in:\n{out}"
