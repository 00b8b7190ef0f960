"""deploy/network-policy/, the optional Component with the webhook pods'
NetworkPolicy, rendered by the real kubectl's kustomize beside the base and
checked by the real API server (`kubectl apply --dry-run=server`): refused
as shipped, until the admin names the API server's address (so that a
forgotten edit isolates nothing rather than cutting the server off), then
accepted, in its AKS form (admission calls from the konnectivity agents)
and with the control-plane CIDR patch of self-managed clusters.

The NetworkPolicy cannot be enforced here: no network plugin runs, and no
pod either (no kubelet), so nothing says which packets it would stop. What
the tests check instead is what it rests on: that it selects exactly the
pods the Service sends admission calls to (not the audit CronJob's), that
each port it opens is one the container declares and the server listens on
(--listen for the webhook, --metrics-listen for the metrics), that the
metrics port serves no admission path (the server started with the
Deployment's own arguments), and that no rule opens a port to everyone."""
from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import urllib.error
import urllib.request

import pytest

import cluster as cp
from harness import DEPLOY, kubectl_objects

COMPONENT = DEPLOY / "network-policy"
PLACEHOLDER = "API-SERVER-ADDRESS/32"
# The e2e API server listens on loopback; in a cluster this is the address
# of the `kubernetes` Service's endpoints.
API_SERVER_CIDR = "127.0.0.1/32"
CONTROL_PLANE_CIDR = "192.0.2.0/28"
ADDRESS_PATCH = [{"op": "replace", "path": "/spec/egress/0/to/0/ipBlock/cidr", "value": API_SERVER_CIDR}]


def _overlay(cluster, workdir, name: str, patches: list[str] = (), component=COMPONENT) -> list[dict]:
    """deploy/ with the Component (and the audit one), as an admin's overlay
    would list them, with these NetworkPolicy patches (YAML or JSON text);
    the objects kubectl renders, read by kubectl."""
    d = workdir / name
    d.mkdir()
    text = ("apiVersion: kustomize.config.k8s.io/v1beta1\n"
            "kind: Kustomization\n"
            f"resources: [{os.path.relpath(DEPLOY, d)}]\n"
            f"components: [{os.path.relpath(component, d)}, {os.path.relpath(DEPLOY / 'audit', d)}]\n")
    if patches:
        text += "patches:\n" + "".join(
            "  - target: {kind: NetworkPolicy, name: spark-identity-webhook}\n"
            f"    patch: {json.dumps(p)}\n" for p in patches)
    (d / "kustomization.yaml").write_text(text)
    rendered = cluster.kubectl("kustomize", d).stdout
    return kubectl_objects(cluster.kubectl("create", "--dry-run=client", "-o", "json", "-f", "-",
                                           input=rendered).stdout)


def _one(objects: list[dict], kind: str) -> dict:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def _apply_server_dry_run(cluster, objects: list[dict], check=True):
    return cluster.kubectl("apply", "--dry-run=server", "-f", "-", check=check,
                           input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))


@pytest.fixture(scope="module")
def aks(kubectl, cluster, workdir) -> list[dict]:
    """The Component with the API server's address set, as the admin sets it."""
    return _overlay(cluster, workdir, "np-aks", [json.dumps(ADDRESS_PATCH)])


def test_the_component_adds_one_networkpolicy_to_the_base(kubectl, cluster, workdir):
    base = kubectl_objects(cluster.kubectl("create", "--dry-run=client", "-o", "json", "-f", "-",
                                           input=cluster.kubectl("kustomize", DEPLOY).stdout).stdout)
    with_np = _overlay(cluster, workdir, "np-shipped-render")
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    added = {key(o) for o in with_np} - {key(o) for o in base}
    assert {k for k in added if k[0] == "NetworkPolicy"} == {("NetworkPolicy", "spark-identity-webhook")}
    assert _one(with_np, "NetworkPolicy")["metadata"]["namespace"] == cp.WEBHOOK_NAMESPACE


def test_as_shipped_the_api_server_refuses_it(kubectl, cluster, workdir):
    """The egress address is a placeholder that is no CIDR: applied without
    the admin's edit, the object is refused whole, so the pods stay
    unisolated instead of losing the API server."""
    np = _one(_overlay(cluster, workdir, "np-shipped"), "NetworkPolicy")
    assert np["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"] == PLACEHOLDER
    p = _apply_server_dry_run(cluster, [np], check=False)
    assert p.returncode != 0, p.stdout
    assert "spec.egress[0].to[0].ipBlock.cidr" in p.stderr and PLACEHOLDER in p.stderr, p.stderr


def test_with_the_api_servers_address_the_api_server_accepts_it(kubectl, cluster, aks):
    """The whole rendering (base, audit and network-policy Components), as
    `kubectl apply -k` would send it."""
    p = _apply_server_dry_run(cluster, aks)
    assert "networkpolicy.networking.k8s.io/spark-identity-webhook created (server dry run)" in p.stdout, p.stdout
    np = _one(aks, "NetworkPolicy")
    assert np["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": API_SERVER_CIDR}}]


def test_the_control_plane_cidr_patch_for_self_managed_clusters(kubectl, cluster, workdir):
    """control-plane-cidr.yaml, with the admin's CIDR in place of the
    placeholder, enabled as the Component's kustomization.yaml shows (its
    commented lines uncommented, in a copy): admission calls are allowed
    from that CIDR instead of from the konnectivity agents, and the API
    server accepts it; left unedited, the API server refuses it too."""
    copy = workdir / "np-self-managed-component"
    shutil.copytree(COMPONENT, copy)
    k = (copy / "kustomization.yaml").read_text()
    commented = re.search(r"^# patches:\n(?:#   .*\n)+", k, re.M)
    assert commented, k
    (copy / "kustomization.yaml").write_text(k.replace(commented.group(0),
                                                       re.sub(r"^# ", "", commented.group(0), flags=re.M)))

    shipped = _one(_overlay(cluster, workdir, "np-self-managed-shipped", [json.dumps(ADDRESS_PATCH)], copy),
                   "NetworkPolicy")
    assert shipped["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "CONTROL-PLANE-CIDR"}}]
    p = _apply_server_dry_run(cluster, [shipped], check=False)
    assert p.returncode != 0 and "CONTROL-PLANE-CIDR" in p.stderr, p.stderr + p.stdout

    patch = (copy / "control-plane-cidr.yaml")
    patch.write_text(patch.read_text().replace("CONTROL-PLANE-CIDR", CONTROL_PLANE_CIDR))
    objects = _overlay(cluster, workdir, "np-self-managed", [json.dumps(ADDRESS_PATCH)], copy)
    np = _one(objects, "NetworkPolicy")
    assert np["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": CONTROL_PLANE_CIDR}}]
    assert np["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": "https"}]
    p = _apply_server_dry_run(cluster, objects)
    assert "networkpolicy.networking.k8s.io/spark-identity-webhook created (server dry run)" in p.stdout, p.stdout


def _listen_port(args: list[str], flag: str) -> int:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")]
    return int(value.rsplit(":", 1)[1])


def test_it_selects_the_serving_pods_and_opens_only_their_declared_ports(kubectl, cluster, aks):
    np = _one(aks, "NetworkPolicy")
    deployment, service = _one(aks, "Deployment"), _one(aks, "Service")
    spec = np["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]

    # The pods the Service sends admission calls to, and no others (the
    # audit CronJob's pods are not isolated by it, nor need to be).
    selector = spec["podSelector"]
    assert set(selector) == {"matchLabels"}, selector
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector["matchLabels"].items() <= pod_labels.items()
    assert selector["matchLabels"] == service["spec"]["selector"]
    cron = _one(aks, "CronJob")
    assert not selector["matchLabels"].items() <= \
        cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"].items()

    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    declared = {p["name"]: p["containerPort"] for p in container["ports"]}
    args = container["args"]
    assert declared["https"] == _listen_port(args, "--listen")
    assert declared["metrics"] == _listen_port(args, "--metrics-listen")
    # The Service's ports: admission on `https`, and `metrics` for a
    # ServiceMonitor; both reach only what the rules below let in.
    assert sorted(p["targetPort"] for p in service["spec"]["ports"]) == ["https", "metrics"]

    webhook_rule, metrics_rule = spec["ingress"]
    for rule in spec["ingress"]:
        assert rule.get("from") and rule.get("ports"), f"a rule open to everyone: {rule}"
        for port in rule["ports"]:
            assert port["protocol"] == "TCP", port
            assert port["port"] in declared or port["port"] in declared.values(), \
                f"{port} is not a port the container declares ({declared})"
    # Admission calls: from AKS's konnectivity agents, pods of kube-system
    # with both selectors in one peer (two peers would let every pod of
    # kube-system, and every app: konnectivity-agent pod of this namespace, in).
    assert webhook_rule["ports"] == [{"protocol": "TCP", "port": "https"}]
    assert webhook_rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                     "podSelector": {"matchLabels": {"app": "konnectivity-agent"}}}]
    # Metrics: from the monitoring namespace, selected by the label every
    # namespace carries with its own name.
    assert metrics_rule["ports"] == [{"protocol": "TCP", "port": "metrics"}]
    assert metrics_rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    # The kubelet's probes come from the node, which NetworkPolicy always
    # lets in: no rule is needed for them, on whichever port they call.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in declared, container[probe]

    # Out: the API server's address alone, on the API server's ports; no DNS
    # (the server connects to KUBERNETES_SERVICE_HOST, an address).
    (egress,) = spec["egress"]
    assert egress["to"] == [{"ipBlock": {"cidr": API_SERVER_CIDR}}]
    assert sorted(p["port"] for p in egress["ports"]) == [443, 6443]


def _get(url: str, ctx=None, method="GET", data=None) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def test_the_deployments_arguments_serve_metrics_apart_from_admission(kubectl, cluster, webhook, workdir, aks):
    """The server started with the Deployment's own arguments (its paths
    and ports swapped for the test's): the port the NetworkPolicy opens to
    the monitoring namespace serves /metrics over plain HTTP and no
    admission path, and the HTTPS port the API server calls still serves
    /metrics too (README.md, "Metrics")."""
    (container,) = _one(aks, "Deployment")["spec"]["template"]["spec"]["containers"]
    wh = cp.Webhook(webhook.binary, workdir / "deployment-args", webhook.policy, webhook.kubeconfig)
    wh.dir.mkdir()
    wh.make_certs()
    metrics_port = cp.free_port()
    swap = {"--policy": str(wh.policy), "--tls-cert": str(wh.certs / "tls.crt"),
            "--tls-key": str(wh.certs / "tls.key")}
    args = [container["args"][0]]
    for a in container["args"][1:]:
        flag, _, value = a.partition("=")
        if flag in swap:
            a = f"{flag}={swap[flag]}"
        elif flag in ("--listen", "--metrics-listen"):
            host = value.rsplit(":", 1)[0]
            a = f"{flag}={host}:{wh.port if flag == '--listen' else metrics_port}"
        else:
            assert not value.startswith("/"), f"{a}: a path in the Deployment this test does not know where to find"
        args.append(a)
    assert args[0] == "serve" and any(a.startswith("--metrics-listen=") for a in args), args
    wh.proc = cp.Proc("deployment-args-webhook", [wh.binary, *args, "--kubeconfig", wh.kubeconfig],
                      wh.dir / "webhook.log").start()
    try:
        wh.proc.wait_until(wh._ready, "ready (/readyz)", 30)
        status, body = _get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200 and "spark_identity_webhook_build_info" in body, (status, body[:300])
        assert _get(f"http://127.0.0.1:{metrics_port}/readyz")[0] == 200
        review = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode()
        for path in ("/mutate", "/validate"):
            status, body = _get(f"http://127.0.0.1:{metrics_port}{path}", method="POST", data=review)
            assert status == 404, (path, status, body)
        ctx = ssl.create_default_context(cafile=str(wh.certs / "ca.crt"))
        status, body = _get(f"https://127.0.0.1:{wh.port}/metrics", ctx)
        assert status == 200 and "spark_identity_webhook_build_info" in body
    finally:
        wh.stop()
