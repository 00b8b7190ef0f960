"""Spark 3.5 driver and executor pods, posted as Spark posts them, through
the real API server: what it stores is what the policy says."""
from __future__ import annotations

import json

import pytest

from harness import (create_pod, env_of, expected_spark_pod, fixture_object, get_pod, model,
                      spark_container, unique, warnings_of)

NS = "team-a"


@pytest.fixture(scope="module")
def app(kubectl, cluster):
    """One Spark application in team-a: the driver, then an executor owned by
    the driver pod the API server stored (as Spark does)."""
    driver = unique(fixture_object("spark35-driver.json"), "app")
    created_driver = create_pod(cluster, driver, NS)
    stored_driver = get_pod(cluster, NS, driver["metadata"]["name"])

    executor = unique(fixture_object("spark35-executor.json"), "app")
    owner = executor["metadata"]["ownerReferences"][0]
    owner["name"] = stored_driver["metadata"]["name"]
    owner["uid"] = stored_driver["metadata"]["uid"]
    created_executor = create_pod(cluster, executor, NS)
    stored_executor = get_pod(cluster, NS, executor["metadata"]["name"])
    return {
        "driver": (driver, stored_driver, created_driver),
        "executor": (executor, stored_executor, created_executor),
    }


def _rule(policy):
    return model.rule_for(policy, NS)


@pytest.mark.parametrize("role", ["driver", "executor"])
def test_stored_pod_carries_the_identity_label_and_keeps_sparks_labels(app, policy, role):
    sent, stored, _ = app[role]
    want = dict(sent["metadata"]["labels"])
    want[model.IDENTITY_LABEL] = _rule(policy).identity
    assert stored["metadata"]["labels"] == want
    assert stored["metadata"]["labels"]["aadpodidbinding"] == "sparkaks"


@pytest.mark.parametrize("role", ["driver", "executor"])
def test_stored_spark_container_env_is_what_the_policy_computes(app, policy, role):
    sent, stored, _ = app[role]
    want = spark_container(expected_spark_pod(sent, NS, policy))
    got = spark_container(stored)
    names = [e["name"] for e in got["env"]]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    assert env_of(got) == env_of(want)
    # Spark's own variables keep their order; ours come after them.
    sent_names = [e["name"] for e in spark_container(sent)["env"]]
    assert [n for n in names if n in sent_names] == sent_names
    assert env_of(got)["JAVA_HOME"]["value"] == "/opt/java/openjdk"


def test_driver_spark_submit_opts_are_the_rules_flags(app, policy):
    _, stored, _ = app["driver"]
    flags = _rule(policy).flags
    assert env_of(spark_container(stored))["SPARK_SUBMIT_OPTS"]["value"] == " ".join(flags)
    assert flags == [
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Dspark.hadoop.fs.azure.account.auth.type=OAuth",
        "-Dspark.hadoop.fs.azure.account.oauth.provider.type="
        "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider",
        "-Dspark.hadoop.fs.azure.account.oauth2.client.id=d23f0824-128b-4f33-8c5c-7fd0a6a3a450",
        "-Dspark.hadoop.fs.azure.account.oauth2.msi.tenant=6513270e-269e-4d37-b2a7-4de452e6b438",
    ]


def test_executor_gets_one_spark_java_opt_per_flag_after_sparks_own(app, policy):
    sent, stored, _ = app["executor"]
    existing = [int(e["name"].rsplit("_", 1)[1]) for e in spark_container(sent)["env"]
                if model.JAVA_OPT_RE.match(e["name"])]
    assert existing, "the Spark 3.5 executor fixture carries Spark's own SPARK_JAVA_OPT_n"
    # Spark 3.5 already passes -Dio.netty.tryReflectionSetAccessible=true to
    # executors: that flag is not added again.
    present = {e.get("value") for e in spark_container(sent)["env"] if model.JAVA_OPT_RE.match(e["name"])}
    assert "-Dio.netty.tryReflectionSetAccessible=true" in present
    flags = _rule(policy).flags
    missing = [f for f in flags if f not in present]
    first = max(existing) + 1
    added = {f"SPARK_JAVA_OPT_{first + i}": f for i, f in enumerate(missing)}
    env = env_of(spark_container(stored))
    assert {n: env[n]["value"] for n in added if n in env} == added
    assert f"SPARK_JAVA_OPT_{first + len(missing)}" not in env
    opts = [e["value"] for e in spark_container(stored)["env"] if model.JAVA_OPT_RE.match(e["name"])]
    for f in flags:
        assert opts.count(f) == 1, f
    assert "SPARK_SUBMIT_OPTS" not in env


def test_nothing_else_changes(app):
    for role in ("driver", "executor"):
        sent, stored, created = app[role]
        assert not warnings_of(created), f"{role}: {created.stderr}"
        for c_sent, c_got in zip(sent["spec"]["containers"], stored["spec"]["containers"]):
            for key in ("name", "image", "args", "ports", "resources", "volumeMounts"):
                if key == "volumeMounts":
                    # the ServiceAccount admission plugin adds kube-api-access
                    got = [m for m in c_got.get(key, []) if not m["name"].startswith("kube-api-access-")]
                    assert got == c_sent.get(key, []), (role, key)
                else:
                    assert c_got.get(key) == c_sent.get(key), (role, key)
        got_volumes = [v for v in stored["spec"]["volumes"] if not v["name"].startswith("kube-api-access-")]
        assert got_volumes == sent["spec"]["volumes"], role
        assert stored["spec"]["serviceAccountName"] == "spark"
    executor, stored_executor, _ = app["executor"]
    driver = app["driver"][1]
    assert stored_executor["metadata"]["ownerReferences"][0]["uid"] == driver["metadata"]["uid"]


def test_the_api_server_audit_log_records_our_mutation(app, cluster, registration):
    name = app["driver"][1]["metadata"]["name"]
    events = [e for e in cluster.audit_events()
              if e.get("verb") == "create" and e.get("stage") == "ResponseComplete"
              and (e.get("objectRef") or {}).get("resource") == "pods"
              and (e.get("objectRef") or {}).get("namespace") == NS
              and (e.get("objectRef") or {}).get("name") == name]
    assert len(events) == 1, f"{len(events)} audit events for creating {name}"
    ann = events[0].get("annotations") or {}
    mutations = [json.loads(v) for k, v in ann.items() if k.startswith("mutation.webhook.admission.k8s.io/")]
    ours = [m for m in mutations if m.get("webhook") in registration.webhook_names]
    assert ours and any(m.get("mutated") is True for m in ours), ann
    assert all(m.get("configuration") == registration.name for m in ours), ours
    patches = [json.loads(v) for k, v in ann.items() if k.startswith("patch.webhook.admission.k8s.io/")]
    ours = [p for p in patches if p.get("webhook") in registration.webhook_names]
    assert ours, ann
    paths = [op["path"] for p in ours for op in p["patch"]]
    assert any(p.startswith("/metadata/labels") for p in paths), paths
    assert any("/env" in p for p in paths), paths


def test_the_webhook_logged_each_decision(app, webhook):
    for role in ("driver", "executor"):
        name = app[role][1]["metadata"]["name"]
        hits = [d for d in webhook.decisions() if name in json.dumps(d)]
        assert hits, f"no decision line names {name}"
        # Our other webhook (identity claims) may see the pod again after
        # the label was set: that call changes nothing.
        mutated = [d for d in hits if "mutated" in json.dumps(d)]
        assert len(mutated) == 1, hits
        line = json.dumps(mutated[0])
        assert NS in line and "sparkaks" in line and role in line, mutated[0]
