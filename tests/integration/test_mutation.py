"""The mutation rules of issue 2 against realistic Spark and non-Spark pods.

Every answer is checked against model.expect, which computes the expected pod
from tests/fixtures/policy.yaml and the rules (not from the server): the
returned patch is applied with jsonpatch and the result compared with the
whole expected pod; a patched pod posted again must get no patch."""
import copy
import json

import pytest

import model
from conftest import (ALL_FIXTURES, POLICY_UNMATCHED_DENY, apply_response, check_against_oracle, decode_patch,
                      env_of, fresh, in_namespace, load_fixture, policy, run_bin, spark_container, with_object)

TEAM_A = model.rule_for(policy(), "team-a")


def flags(ns):
    return model.rule_for(policy(), ns).flags


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_fixture_answer_matches_the_rules(client, name):
    check_against_oracle(client, fresh(load_fixture(name)))


# --- drivers ----------------------------------------------------------------

def test_scala_driver_gets_label_java_home_and_submit_opts(client):
    rv = fresh(load_fixture("spark35-driver.json"))
    pod = rv["request"]["object"]
    r = check_against_oracle(client, rv)["response"]
    out = apply_response(pod, r)
    assert out["metadata"]["labels"]["aadpodidbinding"] == "sparkaks"
    for k, v in pod["metadata"]["labels"].items():
        assert out["metadata"]["labels"][k] == v, f"Spark label {k} changed"
    env = env_of(spark_container(out))
    assert env["JAVA_HOME"]["value"] == "/opt/java/openjdk"
    want = " ".join(["-Dio.netty.tryReflectionSetAccessible=true",
                     "-Dspark.hadoop.fs.azure.account.auth.type=OAuth",
                     "-Dspark.hadoop.fs.azure.account.oauth.provider.type=org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider",
                     f"-Dspark.hadoop.fs.azure.account.oauth2.client.id={TEAM_A.hadoop['fs.azure.account.oauth2.client.id']}",
                     f"-Dspark.hadoop.fs.azure.account.oauth2.msi.tenant={TEAM_A.hadoop['fs.azure.account.oauth2.msi.tenant']}"])
    assert env["SPARK_SUBMIT_OPTS"]["value"] == want
    assert "SPARK_JAVA_OPT_0" not in env and "JAVA_TOOL_OPTIONS" not in env
    assert out["spec"]["volumes"] == pod["spec"]["volumes"]


def test_driver_without_metadata_namespace_uses_request_namespace(client):
    rv = fresh(load_fixture("spark35-driver.json"))
    del rv["request"]["object"]["metadata"]["namespace"]   # as Spark posts it
    out = check_against_oracle(client, rv)["response"]
    assert apply_response(rv["request"]["object"], out)["metadata"]["labels"]["aadpodidbinding"] == "sparkaks"


def test_pyspark_driver_keeps_users_submit_opts_after_ours(client):
    rv = fresh(load_fixture("spark35-pyspark-driver.json"))
    r = check_against_oracle(client, rv)["response"]
    env = env_of(spark_container(apply_response(rv["request"]["object"], r)))
    assert env["SPARK_SUBMIT_OPTS"]["value"] == " ".join(TEAM_A.flags) + " -Dfoo=bar"
    assert env["PYSPARK_PYTHON"]["value"] == "python3"


def test_submit_opts_already_holding_one_of_our_flags_gets_it_once(client):
    rv = fresh(load_fixture("spark35-pyspark-driver.json"))
    c = spark_container(rv["request"]["object"])
    user = "-Dio.netty.tryReflectionSetAccessible=true -Dfoo=bar"
    env_of(c)["SPARK_SUBMIT_OPTS"]["value"] = user
    r = check_against_oracle(client, rv)["response"]
    got = env_of(spark_container(apply_response(rv["request"]["object"], r)))["SPARK_SUBMIT_OPTS"]["value"]
    assert got == " ".join(TEAM_A.flags[1:]) + " " + user
    assert got.split().count("-Dio.netty.tryReflectionSetAccessible=true") == 1


def test_submit_opts_from_valuefrom_is_left_alone_with_a_warning(client):
    rv = fresh(load_fixture("spark35-driver-valuefrom.json"))
    before = copy.deepcopy(env_of(spark_container(rv["request"]["object"]))["SPARK_SUBMIT_OPTS"])
    r = check_against_oracle(client, rv)["response"]
    out = apply_response(rv["request"]["object"], r)
    assert env_of(spark_container(out))["SPARK_SUBMIT_OPTS"] == before
    assert out["metadata"]["labels"]["aadpodidbinding"] == "sparkaks"
    assert any("SPARK_SUBMIT_OPTS" in w for w in r.get("warnings", [])), r.get("warnings")


def test_template_driver_sidecar_and_init_container_untouched(client):
    rv = fresh(load_fixture("spark35-driver-template-sidecar.json"))
    pod = rv["request"]["object"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["main", "fluent-bit"]
    r = check_against_oracle(client, rv)["response"]
    out = apply_response(pod, r)
    assert out["spec"]["containers"][1] == pod["spec"]["containers"][1]
    assert out["spec"]["initContainers"] == pod["spec"]["initContainers"]
    assert "SPARK_SUBMIT_OPTS" in env_of(out["spec"]["containers"][0])


def test_template_sidecar_first_as_spark_posts_it(client):
    # Spark appends its own container after the template's others, so a
    # template that renames it to "main" and adds a sidecar posts [sidecar, main].
    rv = fresh(load_fixture("spark35-driver-template-sidecar-first.json"))
    pod = rv["request"]["object"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["fluent-bit", "main"]
    r = check_against_oracle(client, rv)["response"]
    out = apply_response(pod, r)
    assert out["spec"]["containers"][0] == pod["spec"]["containers"][0]
    assert "SPARK_SUBMIT_OPTS" in env_of(out["spec"]["containers"][1])
    assert out["metadata"]["labels"]["aadpodidbinding"] == "sparkaks"


def test_spark_container_without_env_gets_a_whole_env_list(client):
    # Synthetic (Spark always sets env): checks the patch adds the missing
    # list instead of adding under it.
    rv = fresh(load_fixture("spark35-driver.json"))
    del spark_container(rv["request"]["object"])["env"]
    r = check_against_oracle(client, rv)["response"]
    env = env_of(spark_container(apply_response(rv["request"]["object"], r)))
    assert set(env) == {"JAVA_HOME", "SPARK_SUBMIT_OPTS"}


def test_already_mutated_driver_gets_no_patch(client):
    rv = fresh(load_fixture("spark35-driver-mutated.json"))
    r = client.review(rv)["response"]
    assert r["allowed"] is True
    assert "patch" not in r, decode_patch(r)


def test_v1beta1_is_answered_as_v1beta1(client):
    rv = fresh(load_fixture("spark35-driver-v1beta1.json"))
    out = check_against_oracle(client, rv)
    assert out["apiVersion"] == "admission.k8s.io/v1beta1"
    assert "patch" in out["response"]


# --- executors --------------------------------------------------------------

def _opt_envs(container):
    return {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("SPARK_JAVA_OPT_")}


@pytest.mark.parametrize("name,first_new", [("spark35-executor.json", 21), ("spark33-executor.json", 17),
                                            ("spark24-executor.json", 0)])
def test_executor_gets_spark_java_opts_after_the_highest_index(client, name, first_new):
    rv = fresh(load_fixture(name))
    pod = rv["request"]["object"]
    before = _opt_envs(spark_container(pod))
    assert (max(int(k.rsplit("_", 1)[1]) for k in before) + 1 if before else 0) == first_new
    r = check_against_oracle(client, rv)["response"]
    out = apply_response(pod, r)
    after = _opt_envs(spark_container(out))
    for k, v in before.items():
        assert after[k] == v, f"{k} changed"
    added = {k: v for k, v in after.items() if k not in before}
    wanted = [f for f in TEAM_A.flags if f not in before.values()]
    assert added == {f"SPARK_JAVA_OPT_{first_new + i}": f for i, f in enumerate(wanted)}
    assert "SPARK_SUBMIT_OPTS" not in env_of(spark_container(out))
    assert env_of(spark_container(out))["JAVA_HOME"]["value"] == "/opt/java/openjdk"
    assert out["metadata"]["labels"]["aadpodidbinding"] == "sparkaks"
    assert out["metadata"]["ownerReferences"] == pod["metadata"]["ownerReferences"]


def test_spark35_executor_netty_flag_already_present_is_not_added(client):
    rv = fresh(load_fixture("spark35-executor.json"))
    r = client.review(rv)["response"]
    values = list(_opt_envs(spark_container(apply_response(rv["request"]["object"], r))).values())
    assert values.count("-Dio.netty.tryReflectionSetAccessible=true") == 1


def test_executor_with_one_of_our_hadoop_flags_already_present(client):
    rv = fresh(load_fixture("spark24-executor.json"))
    c = spark_container(rv["request"]["object"])
    c["env"].append({"name": "SPARK_JAVA_OPT_0", "value": TEAM_A.flags[1]})
    r = check_against_oracle(client, rv)["response"]
    after = _opt_envs(spark_container(apply_response(rv["request"]["object"], r)))
    assert after["SPARK_JAVA_OPT_0"] == TEAM_A.flags[1]
    assert list(after.values()).count(TEAM_A.flags[1]) == 1
    assert sorted(after) == sorted(f"SPARK_JAVA_OPT_{i}" for i in range(len(TEAM_A.flags)))


# --- per-namespace rules ----------------------------------------------------

@pytest.mark.parametrize("name", ["spark35-driver.json", "spark35-pyspark-driver.json", "spark35-executor.json",
                                  "spark24-executor.json", "spark35-driver-template-sidecar.json"])
@pytest.mark.parametrize("ns", ["team-b", "team-c", "team-d", "team-e", "team-f", "team-off", "team-x"])
def test_fixture_in_other_namespaces_matches_the_rules(client, name, ns):
    check_against_oracle(client, in_namespace(load_fixture(name), ns))


def test_team_b_java_home_override_keeps_default_options(client):
    rv = in_namespace(load_fixture("spark35-driver.json"), "team-b")
    r = check_against_oracle(client, rv)["response"]
    env = env_of(spark_container(apply_response(rv["request"]["object"], r)))
    assert env["JAVA_HOME"]["value"] == "/usr/lib/jvm/java-17-openjdk-amd64"
    assert env["SPARK_SUBMIT_OPTS"]["value"].startswith("-Dio.netty.tryReflectionSetAccessible=true ")


@pytest.mark.parametrize("name", ["spark35-driver.json", "spark35-executor.json"])
def test_team_d_keys_are_per_storage_account(client, name):
    rv = in_namespace(load_fixture(name), "team-d")
    r = check_against_oracle(client, rv)["response"]
    env = env_of(spark_container(apply_response(rv["request"]["object"], r)))
    if name.startswith("spark35-driver"):
        got = env["SPARK_SUBMIT_OPTS"]["value"].split()
    else:
        got = [e["value"] for n, e in env.items() if n.startswith("SPARK_JAVA_OPT_")]
    for acct in ("lakeprod", "lakedev"):
        for key in ("fs.azure.account.auth.type", "fs.azure.account.oauth.provider.type",
                    "fs.azure.account.oauth2.client.id", "fs.azure.account.oauth2.msi.endpoint"):
            assert any(f.startswith(f"-Dspark.hadoop.{key}.{acct}.dfs.core.windows.net=") for f in got), (key, acct, got)
    assert not any(f.startswith("-Dspark.hadoop.fs.azure.account.auth.type=") for f in got), got
    assert "-Dspark.hadoop.mapreduce.fileoutputcommitter.algorithm.version=2" in got


@pytest.mark.parametrize("name", ["spark35-driver.json", "spark35-pyspark-driver.json", "spark35-executor.json"])
def test_team_e_flags_go_to_java_tool_options(client, name):
    rv = in_namespace(load_fixture(name), "team-e")
    pod = rv["request"]["object"]
    r = check_against_oracle(client, rv)["response"]
    out = apply_response(pod, r)
    env = env_of(spark_container(out))
    assert env["JAVA_TOOL_OPTIONS"]["value"] == " ".join(flags("team-e"))
    assert env.get("SPARK_SUBMIT_OPTS") == env_of(spark_container(pod)).get("SPARK_SUBMIT_OPTS")
    assert _opt_envs(spark_container(out)) == _opt_envs(spark_container(pod))
    assert out["metadata"]["labels"]["aadpodidbinding"] == "e-spark"


@pytest.mark.parametrize("name", ["spark35-driver.json", "spark35-executor.json"])
def test_team_c_audit_warns_and_changes_nothing(client, name):
    rv = in_namespace(load_fixture(name), "team-c")
    r = check_against_oracle(client, rv)["response"]
    assert r["allowed"] is True and "patch" not in r
    assert r.get("warnings"), r


def test_audit_claimer_of_an_enforced_identity_is_refused(client):
    """The owner's mode protects the identity: team-b enforces team-b-spark,
    so team-c's audit mode does not let its pods carry it."""
    rv = in_namespace(load_fixture("spark35-driver-foreign-identity.json"), "team-c")
    r = check_against_oracle(client, rv)["response"]
    assert r["allowed"] is False and r["status"]["code"] == 403, r
    assert 'namespace team-c may not use Azure identity "team-b-spark"' in r["status"]["message"]
    # An identity nobody names is still only audited in team-c.
    rv = in_namespace(load_fixture("spark35-driver-foreign-identity.json"), "team-c")
    rv["request"]["object"]["metadata"]["labels"]["aadpodidbinding"] = "nobodys-spark"
    r = check_against_oracle(client, rv)["response"]
    assert r["allowed"] is True and "patch" not in r and r.get("warnings"), r


def test_foreign_identity_is_overridden_with_a_warning_in_team_a(client):
    rv = fresh(load_fixture("spark35-driver-foreign-identity.json"))
    r = check_against_oracle(client, rv)["response"]
    out = apply_response(rv["request"]["object"], r)
    assert out["metadata"]["labels"]["aadpodidbinding"] == "sparkaks"
    assert any("team-b-spark" in w for w in r["warnings"]), r["warnings"]


def test_foreign_identity_is_denied_in_team_f_naming_the_allowed_identity(client):
    rv = in_namespace(load_fixture("spark35-driver-foreign-identity.json"), "team-f")
    r = check_against_oracle(client, rv)["response"]
    assert r["allowed"] is False and r["status"]["code"] == 403
    assert "f-spark" in r["status"]["message"], r["status"]


def test_team_off_gets_nothing(client):
    for name in ("spark35-driver.json", "nginx-pod.json"):
        r = client.review(in_namespace(load_fixture(name), "team-off"))["response"]
        assert r["allowed"] is True and "patch" not in r and not r.get("warnings"), (name, r)


@pytest.mark.parametrize("name", ["spark35-driver-foreign-identity.json", "rogue-pod.json"])
def test_off_namespace_cannot_claim_an_enforced_identity(client, name):
    """off governs what the namespace's own pods get, not what they may claim."""
    rv = in_namespace(load_fixture(name), "team-off")
    r = check_against_oracle(client, rv)["response"]
    assert r["allowed"] is False and "patch" not in r, r


def test_unmatched_namespace_spark_pod_allowed_unchanged(client):
    r = client.review(in_namespace(load_fixture("spark35-driver.json"), "team-x"))["response"]
    assert r["allowed"] is True and "patch" not in r


def test_unmatched_deny_policy_refuses_spark_pod(workdir):
    rv = in_namespace(load_fixture("spark35-driver.json"), "team-x")
    path = workdir / "unmatched.json"
    path.write_text(json.dumps(rv))
    p = run_bin("mutate", "--policy", POLICY_UNMATCHED_DENY, path)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)["response"]
    assert r["uid"] == rv["request"]["uid"] and r["allowed"] is False and r["status"]["code"] == 403, r
    # ...while team-a is still mutated and non-Spark pods in team-x pass.
    for name, ns, allowed in (("spark35-driver.json", "team-a", True), ("nginx-pod.json", "team-x", True)):
        path.write_text(json.dumps(in_namespace(load_fixture(name), ns)))
        p = run_bin("mutate", "--policy", POLICY_UNMATCHED_DENY, path)
        assert p.returncode == 0 and json.loads(p.stdout)["response"]["allowed"] is allowed, p.stdout


# --- non-Spark pods -----------------------------------------------------------

def test_nginx_untouched(client):
    r = check_against_oracle(client, fresh(load_fixture("nginx-pod.json")))["response"]
    assert r["allowed"] is True and "patch" not in r


def test_api_pod_with_an_allowed_identity_passes(client):
    r = check_against_oracle(client, fresh(load_fixture("api-pod-allowed.json")))["response"]
    assert r["allowed"] is True and "patch" not in r


def test_rogue_pod_claiming_team_a_identity_is_refused(client):
    r = check_against_oracle(client, fresh(load_fixture("rogue-pod.json")))["response"]
    assert r["allowed"] is False and r["status"]["code"] == 403
    assert "sparkaks" in r["status"]["message"]


def test_non_spark_pod_claiming_another_namespaces_identity_is_refused(client):
    rv = fresh(load_fixture("api-pod-allowed.json"))
    rv["request"]["object"]["metadata"]["labels"]["aadpodidbinding"] = "lake-spark"
    r = check_against_oracle(client, rv)["response"]
    assert r["allowed"] is False and "lake-spark" in r["status"]["message"]


def test_unknown_identity_in_unlisted_namespace_is_not_our_business(client):
    rv = in_namespace(load_fixture("rogue-pod.json"), "team-x")
    rv["request"]["object"]["metadata"]["labels"]["aadpodidbinding"] = "some-other-teams-id"
    r = check_against_oracle(client, rv)["response"]
    assert r["allowed"] is True and "patch" not in r


def test_audit_namespace_warns_on_unlisted_claim(client):
    rv = in_namespace(load_fixture("rogue-pod.json"), "team-c")
    rv["request"]["object"]["metadata"]["labels"]["aadpodidbinding"] = "nobodys-spark"
    r = check_against_oracle(client, rv)["response"]
    assert r["allowed"] is True and "patch" not in r and r.get("warnings")
    # sparkaks is team-a's, which enforces: refused in audit-mode team-c too.
    r = check_against_oracle(client, in_namespace(load_fixture("rogue-pod.json"), "team-c"))["response"]
    assert r["allowed"] is False, r


# --- what is not a pod CREATE -------------------------------------------------

@pytest.mark.parametrize("name", ["spark35-driver-update.json", "configmap-create.json"])
def test_update_and_other_resources_are_allowed_unchanged(client, name):
    rv = fresh(load_fixture(name))
    r = client.review(rv)["response"]
    assert r["allowed"] is True and "patch" not in r, r


def test_pod_delete_and_eviction_are_allowed_unchanged(client):
    base = fresh(load_fixture("spark35-driver.json"))
    d = fresh(base)
    d["request"]["operation"] = "DELETE"
    d["request"]["oldObject"] = d["request"]["object"]
    d["request"]["object"] = None
    d["request"]["options"] = {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}
    s = fresh(base)   # kubectl drain: CREATE pods/eviction
    pod_name = s["request"]["name"]
    s["request"]["kind"] = s["request"]["requestKind"] = {"group": "policy", "version": "v1", "kind": "Eviction"}
    s["request"]["subResource"] = s["request"]["requestSubResource"] = "eviction"
    s["request"]["object"] = {"kind": "Eviction", "apiVersion": "policy/v1",
                              "metadata": {"name": pod_name, "namespace": "team-a", "creationTimestamp": None}}
    for rv in (d, s):
        r = client.review(rv)["response"]
        assert r["allowed"] is True and "patch" not in r, r


@pytest.mark.parametrize("name", ["spark35-driver.json", "spark35-executor.json", "rogue-pod.json",
                                  "spark35-driver-foreign-identity.json"])
def test_dry_run_is_answered_exactly_like_a_real_request(client, name):
    rv = fresh(load_fixture(name))
    real = client.review(rv)
    dry = copy.deepcopy(rv)
    dry["request"]["dryRun"] = True
    assert client.review(dry) == real
