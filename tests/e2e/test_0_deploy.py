"""The deploy/ kustomize base, applied for real to the API server (with the
test overlay: the loopback URL, the e2e policy and the audit account of
deploy/audit/): every object is stored, and each of the two accounts,
with a token the API server minted for it, has exactly the access its
ClusterRole gives: the serving one reads namespaces and may not read pods,
the audit one lists pods and namespaces. The Deployment as rendered
(priority, Linux nodes, spread, probes, ports, the image of the images:
stanza), and a pod of the stored Deployment admitted in its namespace with
the critical priority."""
from __future__ import annotations

import json
import re

import yaml

from harness import DEPLOY, POLICY, Registration, cp, kubectl_objects

ROOT = DEPLOY.parent


def test_every_object_of_the_base_is_stored(kubectl, cluster, registration):
    for o in registration.objects:
        ns = o["metadata"].get("namespace")
        args = ["get", o["kind"], o["metadata"]["name"]] + (["-n", ns] if ns else [])
        cluster.kubectl(*args)


def test_the_policy_configmap_carries_the_policy_the_webhook_serves(kubectl, cluster, registration):
    cms = [o for o in registration.objects if o["kind"] == "ConfigMap"]
    assert len(cms) == 1, [o["metadata"]["name"] for o in cms]
    got = cluster.kubectl_json("get", "configmap", "-n", cp.WEBHOOK_NAMESPACE, cms[0]["metadata"]["name"])
    assert got["data"] == {"policy.yaml": POLICY.read_text()}


def test_the_webhook_configuration_points_at_the_loopback_server(kubectl, cluster, registration, webhook):
    got = cluster.kubectl_json("get", "mutatingwebhookconfiguration", registration.name)
    for w in got["webhooks"]:
        assert w["clientConfig"] == {"url": webhook.url, "caBundle": webhook.ca_bundle}
        assert w["sideEffects"] == "None"
        assert w["reinvocationPolicy"] == "IfNeeded"
        assert "v1" in w["admissionReviewVersions"]
        assert w["rules"][0]["operations"] == ["CREATE"]
    got = cluster.kubectl_json("get", "validatingwebhookconfiguration", registration.validating_name)
    assert [w["name"] for w in got["webhooks"]] == ["identity-claims.spark-identity.io",
                                                   "namespace-grants.spark-identity.io"]
    for w in got["webhooks"]:
        assert w["clientConfig"] == {"url": webhook.validate_url, "caBundle": webhook.ca_bundle}
        assert w["sideEffects"] == "None" and w["failurePolicy"] == "Fail"
        assert "v1" in w["admissionReviewVersions"]
        assert w["rules"][0]["operations"] == ["CREATE", "UPDATE"]
        assert w["matchConditions"], w["name"]


def test_the_base_webhook_configurations_pass_the_api_servers_validation(kubectl, cluster):
    """deploy/'s configurations exactly as shipped (the Service, an empty
    caBundle, the matchConditions' empty label list): the API server
    compiles and type-checks their CEL (server-side dry run)."""
    base = kubectl_objects(cluster.kubectl("create", "--dry-run=client", "-o", "json", "-f", "-",
                                           input=cluster.kubectl("kustomize", DEPLOY).stdout).stdout)
    configs = [o for o in base if o["kind"] in Registration.KINDS]
    assert {o["kind"] for o in configs} == set(Registration.KINDS)
    assert len(configs) == 3, [o["metadata"]["name"] for o in configs]   # the policy ConfigMap's too
    for i, o in enumerate(configs):
        o["metadata"]["name"] = f"e2e-base-check-{i}"
    p = cluster.kubectl("create", "--dry-run=server", "-f", "-",
                        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": configs}))
    assert p.stdout.count("created (server dry run)") == len(configs), p.stdout


def _rendered_base(cluster) -> list[dict]:
    """deploy/ as `kubectl kustomize` renders it, read by kubectl."""
    return kubectl_objects(cluster.kubectl("create", "--dry-run=client", "-o", "json", "-f", "-",
                                           input=cluster.kubectl("kustomize", DEPLOY).stdout).stdout)


def _one(objects: list[dict], kind: str) -> dict:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def _port_of(args: list[str], flag: str) -> int:
    value = next(a for a in args if a.startswith(flag + "="))
    return int(value.rsplit(":", 1)[1])


def test_the_base_deployment_schedules_as_documented(cluster):
    """Critical priority, Linux nodes, replicas spread over nodes and zones
    as preferences (no anti-affinity beside them); the spread counts the
    Deployment's own pods."""
    deployment = _one(_rendered_base(cluster), "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert "affinity" not in spec, spec.get("affinity")
    spread = {c["topologyKey"]: c for c in spec["topologySpreadConstraints"]}
    assert sorted(spread) == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    for key, c in spread.items():
        assert c["maxSkew"] == 1, key
        assert c["whenUnsatisfiable"] == "ScheduleAnyway", key
        assert c["labelSelector"] == deployment["spec"]["selector"], key
        assert c["matchLabelKeys"] == ["pod-template-hash"], key


def test_the_base_deployment_probes_and_ports(cluster):
    """The start-up probe asks /healthz on the admission port (what the
    server answers as soon as it listens; /readyz waits for the namespace
    list) and gives up after a bounded time; the liveness probe asks the
    same. The `metrics` port is the one --metrics-listen serves, and the
    Service names it `metrics` beside `https`."""
    objects = _rendered_base(cluster)
    deployment, service = _one(objects, "Deployment"), _one(objects, "Service")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    declared = {p["name"]: p["containerPort"] for p in container["ports"]}
    startup, liveness = container["startupProbe"], container["livenessProbe"]
    assert startup["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert liveness["httpGet"] == startup["httpGet"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert startup["periodSeconds"] * startup["failureThreshold"] <= 60, startup
    assert declared == {"https": _port_of(container["args"], "--listen"),
                        "metrics": _port_of(container["args"], "--metrics-listen")}
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert sorted(ports) == ["https", "metrics"]
    assert (ports["https"]["port"], ports["https"]["targetPort"]) == (443, "https")
    assert (ports["metrics"]["port"], ports["metrics"]["targetPort"]) == (declared["metrics"], "metrics")


def test_the_image_is_the_one_the_images_stanza_names(cluster):
    """deploy/base/kustomization.yaml's images: stanza (what the admin
    edits) sets the Deployment's image: its registry placeholder, and the
    version of meson.build as the tag."""
    stanza = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())["images"]
    (entry,) = stanza
    version = re.search(r"^\s*version\s*:\s*'([^']+)'", (ROOT / "meson.build").read_text(), re.M).group(1)
    assert entry["newTag"] == version
    assert entry["newName"].endswith("/" + entry["name"]), entry
    deployment = _one(_rendered_base(cluster), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{entry['newName']}:{entry['newTag']}"


def test_a_pod_of_the_deployment_is_admitted_with_critical_priority(kubectl, cluster, registration):
    """The Deployment the suite applied, as stored; a pod of its template
    in the webhook's namespace (--dry-run=server: no controller makes one
    here): the Priority admission plugin admits system-cluster-critical
    outside kube-system and resolves it, restricted Pod Security has
    nothing to warn about, and the API server kept every scheduling field
    as shipped."""
    rendered = _one(registration.objects, "Deployment")
    name = rendered["metadata"]["name"]
    stored = cluster.kubectl_json("get", "deployment", "-n", cp.WEBHOOK_NAMESPACE, name)
    spec = stored["spec"]["template"]["spec"]
    want = rendered["spec"]["template"]["spec"]
    for key in ("priorityClassName", "nodeSelector", "topologySpreadConstraints"):
        assert spec[key] == want[key], key
    assert spec["containers"][0]["startupProbe"]["httpGet"] == want["containers"][0]["startupProbe"]["httpGet"]

    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"generateName": f"{name}-", "namespace": cp.WEBHOOK_NAMESPACE,
                        "labels": stored["spec"]["template"]["metadata"]["labels"]},
           "spec": spec}
    p = cluster.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(pod))
    assert not [line for line in p.stderr.splitlines() if line.startswith("Warning:")], p.stderr
    got = json.loads(p.stdout)
    value = cluster.kubectl_json("get", "priorityclass", "system-cluster-critical")["value"]
    assert got["spec"]["priorityClassName"] == "system-cluster-critical"
    assert got["spec"]["priority"] == value


def _can(cluster, kubeconfig, verb, resource, *extra) -> bool:
    p = cluster.kubectl("auth", "can-i", verb, resource, *extra, kubeconfig=kubeconfig, check=False)
    assert p.stdout.strip() in ("yes", "no"), p.stderr
    return p.stdout.strip() == "yes"


def _whoami(cluster, kubeconfig) -> str:
    return cluster.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                           kubeconfig=kubeconfig).stdout


# What neither account may do, whatever else it may: (verb, resource, more
# arguments of `kubectl auth can-i`).
FORBIDDEN = (("create", "pods"), ("delete", "pods"), ("update", "namespaces"), ("get", "secrets"),
             ("list", "secrets"), ("get", "configmaps"), ("patch", "mutatingwebhookconfigurations"),
             ("patch", "validatingwebhookconfigurations"), ("create", "serviceaccounts", "--subresource=token"))


def test_the_serving_identity_reads_namespaces_and_nothing_more(kubectl, cluster, registration, webhook):
    """The server runs with the ServiceAccount's identity (a token the API
    server minted for system:serviceaccount:spark-identity-system:
    spark-identity-webhook); the ClusterRole of deploy/base lets it watch
    namespaces, and no more: not even read pods (audits have an account of
    their own)."""
    kc = webhook.kubeconfig
    assert _whoami(cluster, kc) == cp.WEBHOOK_SA_USER
    for verb in ("get", "list", "watch"):
        assert _can(cluster, kc, verb, "namespaces"), f"cannot {verb} namespaces"
    for verb in ("get", "list", "watch"):
        assert not _can(cluster, kc, verb, "pods", "--all-namespaces"), f"may {verb} pods"
        assert not _can(cluster, kc, verb, "pods", "-n", "team-a"), f"may {verb} pods in team-a"
    for verb, resource, *more in FORBIDDEN:
        assert not _can(cluster, kc, verb, resource, *more, "--all-namespaces"), f"may {verb} {resource} {more}"


def test_the_serving_identity_is_refused_a_list_of_pods(kubectl, cluster, registration, webhook):
    """Not only what RBAC says it would do: the request itself, with the
    serving account's token, is refused by the API server."""
    for args in (("--all-namespaces",), ("-n", "team-a")):
        p = cluster.kubectl("get", "pods", *args, kubeconfig=webhook.kubeconfig, check=False)
        assert p.returncode != 0, p.stdout
        assert "Forbidden" in p.stderr and \
            f'User "{cp.WEBHOOK_SA_USER}" cannot list resource "pods"' in p.stderr, p.stderr
    # Namespaces, which it needs, it lists.
    p = cluster.kubectl("get", "namespaces", "-o", "name", kubeconfig=webhook.kubeconfig)
    assert "namespace/team-a" in p.stdout.split()


def test_the_audit_identity_lists_pods_and_namespaces_and_nothing_more(kubectl, cluster, registration,
                                                                       audit_kubeconfig):
    """deploy/audit/'s account, with a token the API server minted for
    it: `list` on pods and namespaces, which is every request `audit` makes,
    and nothing else."""
    kc = audit_kubeconfig
    assert _whoami(cluster, kc) == cp.AUDIT_SA_USER
    for resource in ("pods", "namespaces"):
        assert _can(cluster, kc, "list", resource, "--all-namespaces"), f"cannot list {resource}"
        for verb in ("get", "watch", "update", "patch"):
            assert not _can(cluster, kc, verb, resource, "--all-namespaces"), f"may {verb} {resource}"
    for verb, resource, *more in FORBIDDEN + (("get", "pods", "--subresource=log"),
                                             ("create", "pods", "--subresource=exec")):
        assert not _can(cluster, kc, verb, resource, *more, "--all-namespaces"), f"may {verb} {resource} {more}"
