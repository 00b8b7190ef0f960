"""Workload identity (issue 7) through the real API server, beside pod
identity: team-w (auth: workloadIdentity in policy.yaml) and team-a (pod
identity) each get a Spark 4 driver and executor, posted as Spark posts them.
The API server stores the projected service-account token volume we add (with
its own defaulting), and the stored pods are read back with kubectl.

Also: the federated service account (a driver with another is refused, an
executor with `default` is moved to it), pods that Azure Workload Identity's
own webhook already shaped, `--dry-run=server`, reinvocation (a later webhook,
served here, changes the pod, so the API server calls ours again), a pod that
already went through, and `audit` finding `missing-workload-identity` in a
namespace that moved from pod identity to workload identity by annotation."""
from __future__ import annotations

import base64
import copy
import http.server
import json
import re
import ssl
import subprocess
import threading
import time
import uuid

import pytest

from harness import (POLICY, WEBHOOK_BIN, create_pod, env_of, expected_spark_pod, get_pod, model,
                     mutating_webhook_config, spark_container, warnings_of)
import cluster as cp

WI = "team-w"      # auth: workloadIdentity, serviceAccount: spark
PI = "team-a"      # pod identity (aadpodidbinding: sparkaks)
SA = "spark"
SPARK4 = "apache/spark:4.0.0"

TOKEN_DIR = "/var/run/secrets/spark-identity/azure"
TOKEN_FILE = TOKEN_DIR + "/azure-identity-token"
VOLUME = "spark-identity-azure-token"
AUTHORITY = "https://login.microsoftonline.com/"
AUDIENCE = "api://AzureADTokenExchange"
WI_PROVIDER = "org.apache.hadoop.fs.azurebfs.oauth2.WorkloadIdentityTokenProvider"
MSI_PROVIDER = "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider"
# Our volume as the API server stores it: the pod's projected volume gets
# defaultMode 0644 from the API server's defaulting.
STORED_VOLUME = {"name": VOLUME, "projected": {
    "sources": [{"serviceAccountToken": {"audience": AUDIENCE, "expirationSeconds": 3600,
                                         "path": "azure-identity-token"}}],
    "defaultMode": 420}}
MOUNT = {"name": VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}

# What Azure Workload Identity's own webhook puts on a pod (v1.x): its env,
# and its token volume mounted at /var/run/secrets/azure/tokens.
AWI_DIR = "/var/run/secrets/azure/tokens"
AWI_VOLUME = {"name": "azure-identity-token", "projected": {"sources": [{"serviceAccountToken": {
    "path": "azure-identity-token", "expirationSeconds": 3600, "audience": AUDIENCE}}]}}
AWI_MOUNT = {"name": "azure-identity-token", "mountPath": AWI_DIR, "readOnly": True}

# A webhook served by this module, after ours in the API server's order
# (configurations run sorted by name), for pods with this label in team-w.
LATER_CONFIG = "zz-e2e-later-webhook"
LATER_LABEL = "e2e.spark-identity.io/later-webhook"
LATER_ENV = "E2E_LATER_WEBHOOK"
LATER_ANNOTATION = "e2e.spark-identity.io/later-webhook"

SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation")


def _wi_entry(policy) -> dict:
    e = policy["namespaces"][WI]
    assert e.get("auth") == "workloadIdentity" and e.get("serviceAccount") == SA, e
    return e


def wi_env(policy) -> dict:
    e = _wi_entry(policy)
    return {"AZURE_CLIENT_ID": e["clientId"], "AZURE_TENANT_ID": e["tenantId"],
            "AZURE_FEDERATED_TOKEN_FILE": TOKEN_FILE, "AZURE_AUTHORITY_HOST": AUTHORITY}


def wi_flags(policy) -> list[str]:
    """The JVM flags of team-w's rule: java.options, then the hadoop
    properties sorted by key (WorkloadIdentityTokenProvider replaces the
    MsiTokenProvider of the policy's defaults)."""
    e = _wi_entry(policy)
    return [
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Dspark.hadoop.fs.azure.account.auth.type=OAuth",
        f"-Dspark.hadoop.fs.azure.account.oauth.provider.type={WI_PROVIDER}",
        f"-Dspark.hadoop.fs.azure.account.oauth2.client.id={e['clientId']}",
        f"-Dspark.hadoop.fs.azure.account.oauth2.msi.tenant={e['tenantId']}",
        f"-Dspark.hadoop.fs.azure.account.oauth2.token.file={TOKEN_FILE}",
    ]


# ---------------------------------------------------------------------------
# Spark 4 pods as spark-submit --deploy-mode cluster posts them
# ---------------------------------------------------------------------------

# Spark 4's JavaModuleOptions, as executors receive them (SPARK_JAVA_OPT_n).
SPARK4_EXECUTOR_OPTS = [
    "-XX:+IgnoreUnrecognizedVMOptions",
    "--add-modules=jdk.incubator.vector",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "-Djdk.reflect.useDirectMethodHandle=false",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dspark.driver.port=7078",
    "-Dspark.driver.blockManager.port=7079",
]


def spark4_driver(app: str, sa: str | None = SA, image: str = SPARK4) -> dict:
    """A driver as Spark 4.0's KubernetesClientApplication posts it (its
    serviceAccountName from spark.kubernetes.authenticate.driver.serviceAccountName:
    Spark sets both serviceAccount and serviceAccountName)."""
    app_id = "spark-" + uuid.uuid4().hex
    conf = f"spark-drv-{uuid.uuid4().hex[:16]}-conf-map"
    spec = {
        "restartPolicy": "Never",
        "volumes": [
            {"name": "spark-local-dir-1", "emptyDir": {}},
            {"name": "spark-conf-volume-driver", "configMap": {
                "name": conf, "items": [{"key": "spark.properties", "path": "spark.properties", "mode": 420}],
                "defaultMode": 420}},
        ],
        "containers": [{
            "name": "spark-kubernetes-driver",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "args": ["driver", "--properties-file", "/opt/spark/conf/spark.properties",
                     "--class", "org.apache.spark.examples.SparkPi",
                     "local:///opt/spark/examples/jars/spark-examples_2.13-4.0.0.jar", "100"],
            "ports": [{"name": "driver-rpc-port", "containerPort": 7078, "protocol": "TCP"},
                      {"name": "blockmanager", "containerPort": 7079, "protocol": "TCP"},
                      {"name": "spark-ui", "containerPort": 4040, "protocol": "TCP"}],
            "env": [
                {"name": "SPARK_USER", "value": "airflow"},
                {"name": "SPARK_APPLICATION_ID", "value": app_id},
                {"name": "SPARK_DRIVER_BIND_ADDRESS",
                 "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                {"name": "SPARK_LOCAL_DIRS", "value": f"/var/data/spark-{uuid.uuid4()}"},
                {"name": "SPARK_CONF_DIR", "value": "/opt/spark/conf"},
            ],
            "resources": {"limits": {"memory": "1408Mi"}, "requests": {"cpu": "1", "memory": "1408Mi"}},
            "volumeMounts": [
                {"name": "spark-local-dir-1", "mountPath": "/var/data/spark-local"},
                {"name": "spark-conf-volume-driver", "mountPath": "/opt/spark/conf"},
            ],
        }],
    }
    if sa is not None:
        spec["serviceAccount"] = sa
        spec["serviceAccountName"] = sa
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"{app}-{uuid.uuid4().hex[:8]}-driver",
            "labels": {"spark-app-name": app, "spark-app-selector": app_id, "spark-role": "driver",
                       "spark-version": "4.0.0"},
        },
        "spec": spec,
    }


def spark4_executor(driver: dict, exec_id: int = 1, sa: str | None = SA, ns: str = WI) -> dict:
    """An executor as the driver's ExecutorPodsAllocator posts it, owned by the
    stored driver pod (the driver passes its own service account unless
    spark.kubernetes.authenticate.executor.serviceAccountName says otherwise)."""
    md = driver["metadata"]
    app_id = md["labels"]["spark-app-selector"]
    prefix = md["name"][:-len("-driver")]
    env = [{"name": "SPARK_USER", "value": "airflow"},
           {"name": "SPARK_DRIVER_URL", "value": f"spark://CoarseGrainedScheduler@{prefix}-driver-svc.{ns}.svc:7078"},
           {"name": "SPARK_EXECUTOR_CORES", "value": "1"},
           {"name": "SPARK_EXECUTOR_MEMORY", "value": "1024m"},
           {"name": "SPARK_APPLICATION_ID", "value": app_id},
           {"name": "SPARK_CONF_DIR", "value": "/opt/spark/conf"},
           {"name": "SPARK_EXECUTOR_ID", "value": str(exec_id)},
           {"name": "SPARK_RESOURCE_PROFILE_ID", "value": "0"}]
    env += [{"name": f"SPARK_JAVA_OPT_{i}", "value": v} for i, v in enumerate(SPARK4_EXECUTOR_OPTS)]
    env += [{"name": "SPARK_EXECUTOR_POD_IP",
             "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
            {"name": "SPARK_EXECUTOR_POD_NAME",
             "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {"name": "SPARK_LOCAL_DIRS", "value": "/var/data/spark-local"}]
    spec = {
        "restartPolicy": "Never",
        "hostname": f"{prefix}-exec-{exec_id}"[-63:].lstrip("-"),
        "volumes": [{"name": "spark-local-dir-1", "emptyDir": {}}],
        "containers": [{
            "name": "spark-kubernetes-executor",
            "image": driver["spec"]["containers"][0]["image"],
            "imagePullPolicy": "IfNotPresent",
            "args": ["executor"],
            "ports": [{"name": "blockmanager", "containerPort": 7079, "protocol": "TCP"}],
            "env": env,
            "resources": {"limits": {"memory": "1408Mi"}, "requests": {"cpu": "1", "memory": "1408Mi"}},
            "volumeMounts": [{"name": "spark-local-dir-1", "mountPath": "/var/data/spark-local"}],
        }],
    }
    if sa is not None:
        spec["serviceAccount"] = sa
        spec["serviceAccountName"] = sa
    labels = {k: v for k, v in md["labels"].items() if k in ("spark-app-name", "spark-app-selector",
                                                             "spark-version")}
    labels.update({"spark-exec-id": str(exec_id), "spark-exec-resourceprofile-id": "0",
                   "spark-role": "executor"})
    owner = {"apiVersion": "v1", "kind": "Pod", "name": md["name"], "controller": True,
             "uid": md.get("uid") or str(uuid.uuid4())}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{prefix}-exec-{exec_id}", "labels": labels, "ownerReferences": [owner]},
            "spec": spec}


def with_awi_shape(pod: dict, client_id: str, tenant_id: str) -> dict:
    """The pod as Azure Workload Identity's webhook leaves it (that webhook
    does not run here, so the pod is created with its changes already made):
    the label it selects on, AZURE_* appended to every container, and its
    token volume mounted at /var/run/secrets/azure/tokens."""
    p = copy.deepcopy(pod)
    p["metadata"]["labels"]["azure.workload.identity/use"] = "true"
    for c in p["spec"]["containers"]:
        c.setdefault("env", []).extend([
            {"name": "AZURE_CLIENT_ID", "value": client_id},
            {"name": "AZURE_TENANT_ID", "value": tenant_id},
            {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": AWI_DIR + "/azure-identity-token"},
            {"name": "AZURE_AUTHORITY_HOST", "value": AUTHORITY},
        ])
        c.setdefault("volumeMounts", []).append(dict(AWI_MOUNT))
    p["spec"].setdefault("volumes", []).append(copy.deepcopy(AWI_VOLUME))
    return p


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def is_api_access(name: str) -> bool:
    return name.startswith("kube-api-access-")


def own_volumes(pod: dict) -> list[dict]:
    """The pod's volumes without the ServiceAccount admission plugin's."""
    return [v for v in pod["spec"].get("volumes", []) if not is_api_access(v["name"])]


def own_mounts(container: dict) -> list[dict]:
    return [m for m in container.get("volumeMounts", []) if not is_api_access(m["name"])]


def normalized(pod: dict) -> dict:
    """A stored (or dry-run) pod without what differs between two creations of
    the same pod: server fields, status, and the ServiceAccount admission
    plugin's kube-api-access volume and mounts (a random name; and the plugin
    appends them before webhooks run, so where they land depends on what the
    pod carried)."""
    p = copy.deepcopy(pod)
    for k in SERVER_FIELDS:
        p["metadata"].pop(k, None)
    p.pop("status", None)
    api = [v for v in p["spec"].get("volumes", []) if is_api_access(v["name"])]
    assert len(api) == 1, p["spec"].get("volumes")
    p["spec"]["volumes"] = own_volumes(p)
    for c in p["spec"].get("containers", []) + p["spec"].get("initContainers", []):
        c["volumeMounts"] = own_mounts(c)
    return p


def resubmittable(stored: dict, name: str) -> dict:
    """A stored pod as a client would post it again: without server fields,
    status, and the ServiceAccount admission plugin's volume (it adds a new
    one)."""
    p = copy.deepcopy(stored)
    md = p["metadata"]
    for k in SERVER_FIELDS + ("namespace",):
        md.pop(k, None)
    md["name"] = name
    p.pop("status", None)
    p["spec"]["volumes"] = own_volumes(p)
    for c in p["spec"]["containers"] + p["spec"].get("initContainers", []):
        c["volumeMounts"] = own_mounts(c)
        if not c["volumeMounts"]:
            del c["volumeMounts"]
    return p


def env_names(container: dict) -> list[str]:
    return [e["name"] for e in container.get("env", [])]


def assert_no_duplicates(pod: dict) -> None:
    for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
        names = env_names(c)
        assert len(names) == len(set(names)), f"{c['name']}: duplicate env names {names}"
        paths = [m["mountPath"] for m in c.get("volumeMounts", [])]
        assert len(paths) == len(set(paths)), f"{c['name']}: duplicate mount paths {paths}"
    vols = [v["name"] for v in pod["spec"].get("volumes", [])]
    assert len(vols) == len(set(vols)), f"duplicate volumes {vols}"


def as_stored(volume: dict) -> dict:
    """A volume as the API server stores it: projected volumes get defaultMode."""
    v = copy.deepcopy(volume)
    if "projected" in v:
        v["projected"].setdefault("defaultMode", 420)
    return v


def assert_workload_identity(stored: dict, sent: dict, policy) -> None:
    """The stored Spark pod of team-w: our env, volume and mount on the Spark
    container, the rule's JVM flags, the federated service account, no
    aadpodidbinding; Spark's own labels, env, mounts and volumes kept."""
    assert_no_duplicates(stored)
    labels = stored["metadata"].get("labels", {})
    assert model.IDENTITY_LABEL not in labels, labels
    assert labels == sent["metadata"]["labels"]
    assert stored["spec"]["serviceAccountName"] == SA
    assert stored["spec"].get("serviceAccount", SA) == SA

    got = spark_container(stored)
    env = env_of(got)
    for name, value in wi_env(policy).items():
        assert env.get(name) == {"name": name, "value": value}, (name, env.get(name))
    assert env["JAVA_HOME"] == {"name": "JAVA_HOME", "value": "/opt/java/openjdk"}
    # The pod's own variables are kept, in their order.
    sent_names = env_names(spark_container(sent))
    assert [n for n in env_names(got) if n in sent_names] == sent_names
    for e in spark_container(sent)["env"]:
        if not e["name"].startswith("AZURE_"):
            assert env[e["name"]] == e, e["name"]

    # Our mount, exactly, after the pod's own; our projected token volume as
    # the API server stored it, after the pod's own and beside the
    # ServiceAccount admission plugin's kube-api-access volume.
    assert own_mounts(got) == spark_container(sent).get("volumeMounts", []) + [MOUNT], got.get("volumeMounts")
    assert [v for v in stored["spec"]["volumes"] if v["name"] == VOLUME] == [STORED_VOLUME]
    assert own_volumes(stored) == [as_stored(v) for v in sent["spec"]["volumes"]] + [STORED_VOLUME], \
        own_volumes(stored)
    api = [v for v in stored["spec"]["volumes"] if is_api_access(v["name"])]
    assert len(api) == 1 and "projected" in api[0], "the ServiceAccount admission plugin's volume"

    # The JVM flags name WorkloadIdentityTokenProvider, never MsiTokenProvider.
    flags = wi_flags(policy)
    role = labels["spark-role"]
    if role == "driver":
        assert env["SPARK_SUBMIT_OPTS"]["value"] == " ".join(flags)
    else:
        opts = [e["value"] for e in got["env"] if model.JAVA_OPT_RE.match(e["name"])]
        for f in flags:
            assert opts.count(f) == 1, (f, opts)
        assert "SPARK_SUBMIT_OPTS" not in env
    assert MSI_PROVIDER not in json.dumps(stored)

    # Nothing else of the Spark container changes.
    sent_c = spark_container(sent)
    for key in ("name", "image", "args", "ports", "resources"):
        assert got.get(key) == sent_c.get(key), key


def audit_events_for(cluster, ns: str, name: str) -> list[dict]:
    return [e for e in cluster.audit_events()
            if e.get("verb") == "create" and e.get("stage") == "ResponseComplete"
            and (e.get("objectRef") or {}).get("resource") == "pods"
            and not (e.get("objectRef") or {}).get("subresource")
            and (e.get("objectRef") or {}).get("namespace") == ns
            and (e.get("objectRef") or {}).get("name") == name]


def webhook_calls(cluster, ns: str, name: str) -> list[tuple[int, str, bool, list | None]]:
    """(round, webhook, mutated, patch) for every mutating webhook call the
    API server made creating the pod, from its audit log annotations."""
    events = audit_events_for(cluster, ns, name)
    assert len(events) == 1, f"{len(events)} audit events for creating {ns}/{name}"
    ann = events[0].get("annotations") or {}
    out = []
    for k, v in ann.items():
        m = re.fullmatch(r"mutation\.webhook\.admission\.k8s\.io/round_(\d+)_index_(\d+)", k)
        if not m:
            continue
        call = json.loads(v)
        patch = ann.get(f"patch.webhook.admission.k8s.io/round_{m.group(1)}_index_{m.group(2)}")
        out.append((int(m.group(1)), call["webhook"], call["mutated"],
                    json.loads(patch)["patch"] if patch else None))
    return sorted(out, key=lambda c: c[0])


def not_found(cluster, ns: str, name: str) -> bool:
    p = cluster.kubectl("get", "pod", "-n", ns, name, check=False)
    return p.returncode != 0 and "NotFound" in p.stderr


def run_audit(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(WEBHOOK_BIN), "audit", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def audit_findings(kubeconfig, ns: str) -> tuple[int, dict]:
    """`audit` of one namespace, with the audit account's kubeconfig."""
    p = run_audit("--policy", POLICY, "--kubeconfig", kubeconfig, "-o", "json", "--namespace", ns)
    assert p.returncode in (0, 1), p.stderr
    doc = json.loads(p.stdout)
    by_pod: dict = {}
    for f in doc["findings"]:
        assert f["namespace"] == ns, f
        by_pod.setdefault(f["pod"], set()).add(f["problem"])
    return p.returncode, by_pod


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

def create_namespace(cluster, name: str, annotations: dict | None = None) -> None:
    """The namespace and its service accounts, as an admin makes them (no
    kube-controller-manager runs here, so nothing makes `default`)."""
    cluster.kubectl("create", "namespace", name)
    if annotations:
        cluster.kubectl("annotate", "namespace", name, *[f"{k}={v}" for k, v in annotations.items()])
    for sa in ("default", SA, "etl"):
        cluster.kubectl("create", "serviceaccount", sa, "-n", name)


@pytest.fixture(scope="module")
def wi_ns(kubectl, cluster, policy):
    _wi_entry(policy)
    create_namespace(cluster, WI)
    return WI


@pytest.fixture(scope="module")
def apps(wi_ns, cluster):
    """One Spark 4 application in each namespace: the driver (first as a
    server-side dry run, then for real), then an executor owned by the stored
    driver."""
    out = {}
    for ns in (WI, PI):
        driver = spark4_driver("wi-e2e" if ns == WI else "pi-e2e")
        dry = create_pod(cluster, driver, ns, "--dry-run=server", "-o", "json")
        created = create_pod(cluster, driver, ns)
        stored_driver = get_pod(cluster, ns, driver["metadata"]["name"])
        executor = spark4_executor(stored_driver, ns=ns)
        created_exec = create_pod(cluster, executor, ns)
        out[ns] = {
            "driver": (driver, stored_driver, created),
            "executor": (executor, get_pod(cluster, ns, executor["metadata"]["name"]), created_exec),
            "dry-driver": (json.loads(dry.stdout), dry),
        }
    return out


# ---------------------------------------------------------------------------
# The two modes side by side
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["driver", "executor"])
def test_workload_identity_pods_are_stored_with_env_token_volume_and_mount(apps, policy, role):
    sent, stored, created = apps[WI][role]
    assert_workload_identity(stored, sent, policy)
    assert not warnings_of(created), created.stderr


def test_the_api_server_keeps_our_projected_token_volume_as_a_token_source(apps):
    """What the kubelet will project: a token for audience
    api://AzureADTokenExchange, valid an hour, at the file AZURE_FEDERATED_TOKEN_FILE
    names, of the pod's own service account (the federated one)."""
    _, stored, _ = apps[WI]["driver"]
    vol = next(v for v in stored["spec"]["volumes"] if v["name"] == VOLUME)
    (src,) = vol["projected"]["sources"]
    tok = src["serviceAccountToken"]
    assert tok["audience"] == AUDIENCE and tok["expirationSeconds"] == 3600
    mount = next(m for m in spark_container(stored)["volumeMounts"] if m["name"] == VOLUME)
    assert f"{mount['mountPath']}/{tok['path']}" == env_of(spark_container(stored))["AZURE_FEDERATED_TOKEN_FILE"]["value"]
    assert mount["readOnly"] is True
    assert stored["spec"]["serviceAccountName"] == SA


def test_executor_opts_follow_sparks_own(apps, policy):
    sent, stored, _ = apps[WI]["executor"]
    present = set(SPARK4_EXECUTOR_OPTS)
    missing = [f for f in wi_flags(policy) if f not in present]
    first = len(SPARK4_EXECUTOR_OPTS)
    env = env_of(spark_container(stored))
    assert {f"SPARK_JAVA_OPT_{first + i}": env.get(f"SPARK_JAVA_OPT_{first + i}", {}).get("value")
            for i in range(len(missing))} == {f"SPARK_JAVA_OPT_{first + i}": f for i, f in enumerate(missing)}
    assert f"SPARK_JAVA_OPT_{first + len(missing)}" not in env
    assert stored["metadata"]["ownerReferences"][0]["uid"] == apps[WI]["driver"][1]["metadata"]["uid"]


@pytest.mark.parametrize("role", ["driver", "executor"])
def test_pod_identity_pods_beside_them_are_unchanged_by_the_new_mode(apps, policy, role):
    sent, stored, created = apps[PI][role]
    want = expected_spark_pod(sent, PI, policy)
    assert stored["metadata"]["labels"] == want["metadata"]["labels"]
    assert stored["metadata"]["labels"][model.IDENTITY_LABEL] == "sparkaks"
    assert env_of(spark_container(stored)) == env_of(spark_container(want))
    text = json.dumps(spark_container(stored)["env"])
    assert MSI_PROVIDER in text and WI_PROVIDER not in text and "AZURE_" not in text
    assert own_volumes(stored) == sent["spec"]["volumes"]
    assert own_mounts(spark_container(stored)) == spark_container(sent)["volumeMounts"]
    assert stored["spec"]["serviceAccountName"] == SA
    assert not warnings_of(created), created.stderr


def test_dry_run_server_returns_what_is_stored(apps):
    dry, p = apps[WI]["dry-driver"]
    _, stored, created = apps[WI]["driver"]
    assert normalized(dry) == normalized(stored)
    assert warnings_of(p) == warnings_of(created)


# ---------------------------------------------------------------------------
# The federated service account
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("sa", ["default", "etl"])
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_driver_with_another_service_account_is_refused(wi_ns, cluster, registration, sa, dry_run):
    pod = spark4_driver("wrong-sa", sa=sa)
    extra = ("--dry-run=server",) if dry_run else ()
    p = create_pod(cluster, pod, WI, *extra, check=False)
    assert p.returncode != 0, f"created: {p.stdout}"
    assert "Error from server (Forbidden)" in p.stderr, p.stderr
    assert re.search(registration.denial_re(), p.stderr), p.stderr
    # names the pod's account, the expected one and how to ask Spark for it
    assert re.search(rf"\b{sa}\b", p.stderr), p.stderr
    assert f"spark.kubernetes.authenticate.driver.serviceAccountName={SA}" in p.stderr, p.stderr
    assert not_found(cluster, WI, pod["metadata"]["name"])


@pytest.mark.parametrize("sa", ["default", None])
def test_an_executor_with_the_default_service_account_gets_the_federated_one(apps, cluster, policy, sa):
    """onConflict: override (the policy's default). Without any account the
    ServiceAccount admission plugin sets `default` before webhooks run."""
    _, stored_driver, _ = apps[WI]["driver"]
    pod = spark4_executor(stored_driver, exec_id=10 + (sa is None), sa=sa)
    dry = create_pod(cluster, pod, WI, "--dry-run=server", "-o", "json")
    p = create_pod(cluster, pod, WI)
    stored = get_pod(cluster, WI, pod["metadata"]["name"])
    assert stored["spec"]["serviceAccountName"] == SA and stored["spec"]["serviceAccount"] == SA
    assert json.loads(dry.stdout)["spec"]["serviceAccountName"] == SA
    warnings = warnings_of(p)
    assert any("default" in w and SA in w for w in warnings), p.stderr
    assert warnings_of(dry) == warnings
    sent = copy.deepcopy(pod)
    assert_workload_identity(stored, sent, policy)


def test_an_executor_with_another_non_default_service_account_is_refused(apps, cluster, registration):
    _, stored_driver, _ = apps[WI]["driver"]
    pod = spark4_executor(stored_driver, exec_id=20, sa="etl")
    p = create_pod(cluster, pod, WI, check=False)
    assert p.returncode != 0, f"created: {p.stdout}"
    assert re.search(registration.denial_re(), p.stderr), p.stderr
    assert re.search(r"\betl\b", p.stderr), p.stderr
    assert f"={SA}" in p.stderr, p.stderr
    assert not_found(cluster, WI, pod["metadata"]["name"])


# ---------------------------------------------------------------------------
# Labels and images
# ---------------------------------------------------------------------------

def test_a_claimed_foreign_identity_is_removed_with_a_warning(wi_ns, cluster, policy):
    """team-w grants no aadpodidbinding identity; team-a's, claimed by a Spark
    pod, is removed (override), and the stored pod is still ours."""
    pod = spark4_driver("claim")
    pod["metadata"]["labels"][model.IDENTITY_LABEL] = "sparkaks"
    p = create_pod(cluster, pod, WI)
    stored = get_pod(cluster, WI, pod["metadata"]["name"])
    assert model.IDENTITY_LABEL not in stored["metadata"]["labels"]
    assert any("sparkaks" in w and model.IDENTITY_LABEL in w for w in warnings_of(p)), p.stderr
    sent = copy.deepcopy(pod)
    del sent["metadata"]["labels"][model.IDENTITY_LABEL]
    assert_workload_identity(stored, sent, policy)


def test_a_spark_3_image_is_admitted_with_a_warning(wi_ns, cluster, policy):
    """Hadoop 3.3 (Spark 3.x images) lacks WorkloadIdentityTokenProvider."""
    pod = spark4_driver("spark3", image="apache/spark:3.5.1")
    p = create_pod(cluster, pod, WI, "--dry-run=server", "-o", "json")
    got = json.loads(p.stdout)
    assert env_of(spark_container(got))["AZURE_CLIENT_ID"]["value"] == wi_env(policy)["AZURE_CLIENT_ID"]
    assert any("3.5.1" in w and "WorkloadIdentityTokenProvider" in w for w in warnings_of(p)), p.stderr
    assert not_found(cluster, WI, pod["metadata"]["name"])


def test_a_pod_templates_listed_init_container_gets_the_identity_and_its_sidecar_does_not(wi_ns, cluster,
                                                                                          policy):
    """spark.kubernetes.driver.podTemplateFile with an init container that
    fetches dependencies from ADLS (named in the rule's extraContainers) and a
    log-shipping sidecar (not named)."""
    pod = spark4_driver("tmpl")
    pod["spec"]["initContainers"] = [{
        "name": "fetch-deps", "image": "mcr.microsoft.com/azure-cli:2.67.0",
        "command": ["sh", "-c", "az login --federated-token \"$(cat $AZURE_FEDERATED_TOKEN_FILE)\" ..."],
        "env": [{"name": "DEPS", "value": "abfss://deps@lake.dfs.core.windows.net/app/"}],
        "volumeMounts": [{"name": "spark-local-dir-1", "mountPath": "/deps"}]}]
    sidecar = {"name": "log-shipper", "image": "fluent/fluent-bit:3.2",
               "volumeMounts": [{"name": "spark-local-dir-1", "mountPath": "/logs", "readOnly": True}]}
    pod["spec"]["containers"].append(sidecar)
    p = create_pod(cluster, pod, WI)
    assert not warnings_of(p), p.stderr
    stored = get_pod(cluster, WI, pod["metadata"]["name"])
    assert_workload_identity(stored, pod, policy)

    (init,) = stored["spec"]["initContainers"]
    assert env_of(init) == {**env_of(pod["spec"]["initContainers"][0]),
                            **{k: {"name": k, "value": v} for k, v in wi_env(policy).items()}}
    assert own_mounts(init) == pod["spec"]["initContainers"][0]["volumeMounts"] + [MOUNT]
    got_sidecar = stored["spec"]["containers"][1]
    assert "env" not in got_sidecar
    assert own_mounts(got_sidecar) == sidecar["volumeMounts"]


# ---------------------------------------------------------------------------
# Pods that Azure Workload Identity's webhook already shaped
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("same_client", [True, False], ids=["same-identity", "other-client-id"])
def test_a_pod_shaped_by_azure_workload_identity_is_stored_valid_without_duplicates(wi_ns, cluster, policy,
                                                                                     same_client):
    want = wi_env(policy)
    client = want["AZURE_CLIENT_ID"] if same_client else str(uuid.uuid4())
    pod = with_awi_shape(spark4_driver("awi"), client, want["AZURE_TENANT_ID"])
    p = create_pod(cluster, pod, WI)
    stored = get_pod(cluster, WI, pod["metadata"]["name"])

    # Its volume and mount stay (the API server defaults the volume's mode);
    # ours are added beside them: no name or path clash.
    awi_stored = copy.deepcopy(AWI_VOLUME)
    awi_stored["projected"]["defaultMode"] = 420
    assert [v for v in stored["spec"]["volumes"] if v["name"] == AWI_VOLUME["name"]] == [awi_stored]
    assert [m for m in spark_container(stored)["volumeMounts"] if m["name"] == AWI_MOUNT["name"]] == [AWI_MOUNT]

    assert_workload_identity(stored, pod, policy)

    # One of each AZURE_* variable, with our values, where it was.
    names = env_names(spark_container(stored))
    sent_names = env_names(spark_container(pod))
    assert [n for n in names if n.startswith("AZURE_")] == [n for n in sent_names if n.startswith("AZURE_")]
    warnings = warnings_of(p)
    assert any("AZURE_FEDERATED_TOKEN_FILE" in w for w in warnings), p.stderr
    assert any("AZURE_CLIENT_ID" in w for w in warnings) == (not same_client), p.stderr


# ---------------------------------------------------------------------------
# Idempotence: a pod that already went through, and reinvocation
# ---------------------------------------------------------------------------

def test_a_stored_pod_posted_again_is_not_patched(apps, cluster, registration):
    """The stored driver (with the API server's defaulting of our volume)
    posted again under another name: our webhook answers without a patch and
    the new stored pod is the same."""
    _, stored, _ = apps[WI]["driver"]
    name = stored["metadata"]["name"].replace("-driver", "-again-driver")
    pod = resubmittable(stored, name)
    p = create_pod(cluster, pod, WI)
    assert not warnings_of(p), p.stderr
    again = get_pod(cluster, WI, name)
    want = normalized(stored)
    want["metadata"]["name"] = name
    assert normalized(again) == want
    ours = [c for c in webhook_calls(cluster, WI, name) if c[1] in registration.webhook_names]
    assert ours and all(not mutated and patch is None for _, _, mutated, patch in ours), ours


class _LaterWebhook(http.server.BaseHTTPRequestHandler):
    """Inserts an env var at the front of the first container's env (every
    index after it moves) and an annotation, once."""
    protocol_version = "HTTP/1.1"
    calls: list = []

    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        req = review["request"]
        pod = req["object"]
        type(self).calls.append(pod["metadata"].get("name"))
        ops = []
        ann = pod["metadata"].get("annotations")
        key = LATER_ANNOTATION.replace("~", "~0").replace("/", "~1")
        if ann is None:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": {LATER_ANNOTATION: "touched"}})
        elif LATER_ANNOTATION not in ann:
            ops.append({"op": "add", "path": f"/metadata/annotations/{key}", "value": "touched"})
        env = pod["spec"]["containers"][0].get("env")
        if env is None:
            ops.append({"op": "add", "path": "/spec/containers/0/env", "value": [{"name": LATER_ENV, "value": "1"}]})
        elif not any(e["name"] == LATER_ENV for e in env):
            ops.append({"op": "add", "path": "/spec/containers/0/env/0", "value": {"name": LATER_ENV, "value": "1"}})
        resp = {"uid": req["uid"], "allowed": True}
        if ops:
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


@pytest.fixture(scope="module")
def later_webhook(wi_ns, cluster, workdir):
    """A second mutating webhook, served from this process, that the API server
    calls after ours (its configuration's name sorts after ours) for Spark pods
    labelled LATER_LABEL in team-w. It changes the pod, so the API server calls
    ours again (reinvocationPolicy: IfNeeded)."""
    d = workdir / "later-webhook"
    d.mkdir()
    cp.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
               "-CA", str(cluster.pki / "ca.crt"), "-CAkey", str(cluster.pki / "ca.key"),
               "-keyout", "tls.key", "-out", "tls.crt", "-days", "1", "-subj", "/CN=e2e-later-webhook",
               "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE",
               "-addext", "extendedKeyUsage=serverAuth", cwd=d)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / "tls.crt", d / "tls.key")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LaterWebhook)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = mutating_webhook_config(
        LATER_CONFIG, "later.e2e.spark-identity.io", f"https://127.0.0.1:{server.server_address[1]}/mutate",
        base64.b64encode((cluster.pki / "ca.crt").read_bytes()).decode(),
        {"matchExpressions": [{"key": LATER_LABEL, "operator": "Exists"}]},
        {"matchLabels": {"kubernetes.io/metadata.name": WI}})
    try:
        cluster.kubectl("create", "-f", "-", input=json.dumps(config))
        # The API server follows webhook configurations by a watch: wait for it.
        probe = spark4_driver("later-probe")
        probe["metadata"]["labels"][LATER_LABEL] = "true"
        deadline = time.monotonic() + 30
        while True:
            p = create_pod(cluster, probe, WI, "--dry-run=server", "-o", "json", check=False)
            if p.returncode == 0 and LATER_ANNOTATION in (json.loads(p.stdout)["metadata"].get("annotations") or {}):
                break
            assert time.monotonic() < deadline, f"the later webhook is not called: {p.stderr}"
            time.sleep(0.25)
        yield _LaterWebhook
    finally:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", LATER_CONFIG, "--ignore-not-found", check=False)
        server.shutdown()
        server.server_close()


def test_reinvocation_after_a_later_webhook_changes_nothing_more(later_webhook, cluster, registration, policy):
    spark_pods = next(w for w in registration.config["webhooks"] if w["name"].startswith("spark-pods"))
    assert spark_pods.get("reinvocationPolicy") == "IfNeeded", spark_pods

    pod = spark4_driver("later")
    pod["metadata"]["labels"][LATER_LABEL] = "true"
    name = pod["metadata"]["name"]
    create_pod(cluster, pod, WI)
    stored = get_pod(cluster, WI, name)

    calls = webhook_calls(cluster, WI, name)
    ours = [(r, m, patch) for r, w, m, patch in calls if w == spark_pods["name"]]
    later = [(r, m) for r, w, m, _ in calls if w == "later.e2e.spark-identity.io"]
    assert later == [(0, True)], calls
    # Called in round 0 (mutated), then again after the later webhook's
    # change, where it finds everything in place and sends no patch.
    assert [(r, m) for r, m, _ in ours] == [(0, True), (1, False)], calls
    assert ours[1][2] is None, ours[1]
    assert later_webhook.calls.count(name) == 1

    assert stored["metadata"]["annotations"][LATER_ANNOTATION] == "touched"
    names = env_names(spark_container(stored))
    assert names[0] == LATER_ENV and names.count(LATER_ENV) == 1
    sent = copy.deepcopy(pod)
    spark_container(sent)["env"].insert(0, {"name": LATER_ENV, "value": "1"})
    assert_workload_identity(stored, sent, policy)


# ---------------------------------------------------------------------------
# audit: a namespace that moved from pod identity to workload identity
# ---------------------------------------------------------------------------

ANN = "spark-identity.io/"


def _next_driver(cluster, ns: str) -> dict:
    p = create_pod(cluster, spark4_driver("probe"), ns, "--dry-run=server", "-o", "json")
    return json.loads(p.stdout)


def wait_until(cluster, ns: str, holds, what: str, timeout: float = 15) -> None:
    """The server follows namespaces by a watch: waits until the next driver
    posted to ns satisfies holds(pod)."""
    deadline = time.monotonic() + timeout
    pod = _next_driver(cluster, ns)
    while not holds(pod) and time.monotonic() < deadline:
        time.sleep(0.1)
        pod = _next_driver(cluster, ns)
    assert holds(pod), f"namespace {ns}: the next driver is not {what}: {json.dumps(pod)[:2000]}"


def test_audit_finds_pods_created_before_the_namespace_moved_to_workload_identity(kubectl, cluster, policy,
                                                                                  audit_kubeconfig):
    """A namespace with its rule in its annotations moves as an admin moves it:
    pod identity (drivers get aadpodidbinding), then workload identity in
    audit mode (drivers pass unchanged, kubectl shows what would change), then
    enforced. `audit` then finds the drivers of the first two steps."""
    ns = f"mig-{uuid.uuid4().hex[:6]}"
    tenant = wi_env(policy)["AZURE_TENANT_ID"]
    client = "7e4b6931-9c3b-4e80-b6c9-c0a61cca3727"
    create_namespace(cluster, ns, {ANN + "identity": "mig-spark", ANN + "client-id": client,
                                   ANN + "tenant-id": tenant})
    wait_until(cluster, ns, lambda p: p["metadata"]["labels"].get(model.IDENTITY_LABEL) == "mig-spark",
               "pod identity")
    old = spark4_driver("mig-old")
    create_pod(cluster, old, ns)
    stored_old = get_pod(cluster, ns, old["metadata"]["name"])
    assert stored_old["metadata"]["labels"][model.IDENTITY_LABEL] == "mig-spark"
    assert "AZURE_CLIENT_ID" not in env_of(spark_container(stored_old))

    cluster.kubectl("annotate", "namespace", ns, f"{ANN}auth=workloadIdentity", f"{ANN}service-account={SA}",
                    f"{ANN}mode=audit")
    wait_until(cluster, ns, lambda p: model.IDENTITY_LABEL not in p["metadata"]["labels"], "audited")
    audited = spark4_driver("mig-audited")
    p = create_pod(cluster, audited, ns)
    warnings = warnings_of(p)
    assert warnings and all(w.startswith("audit: ") for w in warnings), p.stderr
    assert any(VOLUME in w for w in warnings), p.stderr
    stored_audited = get_pod(cluster, ns, audited["metadata"]["name"])
    assert own_volumes(stored_audited) == audited["spec"]["volumes"]
    assert env_of(spark_container(stored_audited)) == env_of(spark_container(audited))
    assert stored_audited["metadata"]["labels"] == audited["metadata"]["labels"]

    cluster.kubectl("annotate", "--overwrite", "namespace", ns, f"{ANN}mode=enforce")
    wait_until(cluster, ns, lambda p: env_of(spark_container(p)).get("AZURE_CLIENT_ID", {}).get("value") == client,
               "workload identity")
    new = spark4_driver("mig-new")
    create_pod(cluster, new, ns)
    stored_new = get_pod(cluster, ns, new["metadata"]["name"])
    env = env_of(spark_container(stored_new))
    assert env["AZURE_CLIENT_ID"]["value"] == client and env["AZURE_TENANT_ID"]["value"] == tenant
    assert [v for v in stored_new["spec"]["volumes"] if v["name"] == VOLUME] == [STORED_VOLUME]
    assert model.IDENTITY_LABEL not in stored_new["metadata"]["labels"]
    assert WI_PROVIDER in env["SPARK_SUBMIT_OPTS"]["value"]

    rc, by_pod = audit_findings(audit_kubeconfig, ns)
    assert rc == 1
    for pod in (old, audited):
        assert "missing-workload-identity" in by_pod.get(pod["metadata"]["name"], set()), by_pod
    assert new["metadata"]["name"] not in by_pod, by_pod


def test_audit_finds_nothing_missing_in_the_workload_identity_namespace(apps, cluster, audit_kubeconfig):
    """Every pod this module stored in team-w went through the webhook."""
    stored = cluster.kubectl_json("get", "pods", "-n", WI)["items"]
    assert len(stored) >= 2
    rc, by_pod = audit_findings(audit_kubeconfig, WI)
    assert by_pod == {} and rc == 0, by_pod
