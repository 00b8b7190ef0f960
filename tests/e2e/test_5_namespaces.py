"""Rules that come from the namespace itself, through the real API server:
the server watches namespaces, so relabelling or re-annotating one changes
what the next Spark pod gets, with no restart and no call on the admission
path. A pod whose namespace grants an identity by label or annotation keeps
others from claiming it."""
from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from harness import (create_pod, env_of, expected_spark_pod, fixture_object, get_pod, model,
                      spark_container, unique)

TEAM = "spark-identity.io/team"
ANN_ID = "spark-identity.io/identity"
ANN_CLIENT = "spark-identity.io/client-id"
ANN_CLIENT_VALUE = "5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c"
# A watch event reaches the server within milliseconds; this only bounds a wait.
FOLLOW_TIMEOUT_S = 15


def make_namespace(cluster, labels: dict | None = None, annotations: dict | None = None) -> str:
    name = f"lake-{uuid.uuid4().hex[:6]}"
    md = {"name": name}
    if labels:
        md["labels"] = labels
    if annotations:
        md["annotations"] = annotations
    items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": md}]
    items += [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": name}}
              for sa in ("default", "spark")]
    cluster.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return name


def namespace_meta(cluster, name: str) -> tuple[dict, dict]:
    md = cluster.kubectl_json("get", "namespace", name)["metadata"]
    return md.get("labels") or {}, md.get("annotations") or {}


def dry_run_identity(cluster, ns: str) -> str | None:
    """What a driver posted now would carry, without storing it."""
    pod = unique(fixture_object("spark35-driver.json"))
    p = create_pod(cluster, pod, ns, "--dry-run=server", "-o", "json")
    return json.loads(p.stdout)["metadata"]["labels"].get(model.IDENTITY_LABEL)


def wait_for_identity(cluster, ns: str, want: str | None) -> None:
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    got = dry_run_identity(cluster, ns)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.1)
        got = dry_run_identity(cluster, ns)
    assert got == want, f"namespace {ns}: the next driver carries {got!r}, want {want!r}"


def assert_driver_follows_policy(cluster, policy, ns: str) -> dict:
    """Creates a driver for real and checks the stored pod against the model,
    given the namespace's labels and annotations as the API server has them."""
    labels, annotations = namespace_meta(cluster, ns)
    pod = unique(fixture_object("spark35-driver.json"))
    create_pod(cluster, pod, ns)
    stored = get_pod(cluster, ns, pod["metadata"]["name"])
    rule = model.rule_for(policy, ns, labels, annotations)
    if rule is None:
        assert model.IDENTITY_LABEL not in stored["metadata"]["labels"]
        assert "SPARK_SUBMIT_OPTS" not in env_of(spark_container(stored))
        return stored
    want = expected_spark_pod(pod, ns, policy, labels, annotations)
    assert stored["metadata"]["labels"] == want["metadata"]["labels"]
    assert env_of(spark_container(stored)) == env_of(spark_container(want))
    return stored


def test_a_namespace_labelled_for_a_selector_gets_its_rule(kubectl, cluster, policy):
    ns = make_namespace(cluster, labels={TEAM: "data"})
    stored = assert_driver_follows_policy(cluster, policy, ns)
    assert stored["metadata"]["labels"][model.IDENTITY_LABEL] == "data-spark"
    opts = env_of(spark_container(stored))["SPARK_SUBMIT_OPTS"]["value"]
    assert "-Dspark.hadoop.fs.azure.account.oauth2.client.id=0d7e5c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6" in opts


def test_relabelling_a_namespace_changes_the_next_pod(kubectl, cluster, policy):
    ns = make_namespace(cluster)
    assert_driver_follows_policy(cluster, policy, ns)          # no rule: unchanged

    cluster.kubectl("label", "namespace", ns, f"{TEAM}=data")
    wait_for_identity(cluster, ns, "data-spark")
    assert_driver_follows_policy(cluster, policy, ns)

    cluster.kubectl("label", "namespace", ns, "env=frozen")   # NotIn [frozen] no longer holds
    wait_for_identity(cluster, ns, None)
    assert_driver_follows_policy(cluster, policy, ns)

    cluster.kubectl("label", "namespace", ns, "env-")
    wait_for_identity(cluster, ns, "data-spark")


def test_annotations_give_a_namespace_its_identity_and_win_over_labels(kubectl, cluster, policy):
    ns = make_namespace(cluster, labels={TEAM: "data"})
    wait_for_identity(cluster, ns, "data-spark")

    cluster.kubectl("annotate", "namespace", ns, f"{ANN_ID}=ann-spark", f"{ANN_CLIENT}={ANN_CLIENT_VALUE}")
    wait_for_identity(cluster, ns, "ann-spark")
    stored = assert_driver_follows_policy(cluster, policy, ns)
    opts = env_of(spark_container(stored))["SPARK_SUBMIT_OPTS"]["value"]
    assert f"-Dspark.hadoop.fs.azure.account.oauth2.client.id={ANN_CLIENT_VALUE}" in opts

    cluster.kubectl("annotate", "namespace", ns, f"{ANN_ID}-", f"{ANN_CLIENT}-")
    wait_for_identity(cluster, ns, "data-spark")


def test_annotations_that_make_no_rule_refuse_spark_pods_and_say_why(kubectl, cluster):
    ns = make_namespace(cluster, annotations={ANN_ID: "ann-bad", ANN_CLIENT: "not-a-guid"})
    pod = unique(fixture_object("spark35-driver.json"))
    p = create_pod(cluster, pod, ns, check=False)
    assert p.returncode != 0, p.stdout
    assert "Error from server (Forbidden)" in p.stderr, p.stderr
    assert f'{ANN_CLIENT} "not-a-guid" is not a GUID' in p.stderr, p.stderr


def test_a_namespace_created_just_before_its_first_pod(kubectl, cluster, policy):
    """The pod may come before the watch event: the server reads the
    namespace once, and the pod gets its rule all the same."""
    ns = make_namespace(cluster, labels={TEAM: "data"})
    stored = assert_driver_follows_policy(cluster, policy, ns)
    assert stored["metadata"]["labels"][model.IDENTITY_LABEL] == "data-spark"


@pytest.mark.parametrize("identity, granted_by", [("data-spark", "selector"), ("ann-claimed", "annotation")])
def test_identities_granted_by_labels_or_annotations_cannot_be_claimed_elsewhere(kubectl, cluster, identity,
                                                                                 granted_by):
    if granted_by == "annotation":
        owner = make_namespace(cluster, annotations={ANN_ID: identity})
        wait_for_identity(cluster, owner, identity)
    pod = unique(fixture_object("rogue-pod.json"))
    pod["metadata"]["labels"][model.IDENTITY_LABEL] = identity
    p = create_pod(cluster, pod, "team-x", check=False)
    assert p.returncode != 0, p.stdout
    assert re.search(f'namespace team-x may not use Azure identity "{identity}"', p.stderr), p.stderr


def test_the_server_watches_with_its_service_accounts_token(webhook):
    """Every namespace the tests made is in the server's cache, which it
    filled by list and watch with the ServiceAccount's own token."""
    st, body = webhook.readyz()
    assert st == 200, body
    assert json.loads(body)["namespaces"] >= 8
