"""The chart of deploy/helm/spark-identity-webhook against the real helm
(built from its Go module): `helm lint` passes with the default values and
with others; `helm template` with the defaults prints the objects of
`kubectl kustomize deploy/base` (Namespace aside: the release's namespace is
helm's), so that the chart cannot drift from the base; every value lands
where it should; and values the schema refuses fail with its message."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re

import pytest
import yaml

from chart import CHART, DEPLOY, NAMESPACE, ROOT, VALUES, by_key, normalized, objects, run

ADMISSION_POLICY = DEPLOY / "admission-policy" / "admission-policy.yaml"
AP_FILE = f"admissionPolicy.rendered={ADMISSION_POLICY}"
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def webhooks(objs: list[dict]) -> dict[tuple[str, str], dict]:
    """(configuration kind, webhook name) -> webhook, with the policy
    ConfigMap's configuration under ('policy', name)."""
    out = {}
    for o in objs:
        if o["kind"] in WEBHOOK_KINDS:
            kind = "policy" if o["metadata"]["name"].endswith("-policy") else o["kind"]
            for w in o["webhooks"]:
                out[(kind, w["name"])] = w
    return out


def rel(path, start) -> str:
    """kustomize takes only relative paths to other kustomizations."""
    return os.path.relpath(path, start)


def one(objs: list[dict], kind: str) -> dict:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}: {[o['metadata']['name'] for o in found]}"
    return found[0]


def pod_spec(objs: list[dict], kind: str = "Deployment") -> dict:
    o = one(objs, kind)
    return o["spec"]["template"]["spec"] if kind == "Deployment" else o["spec"]["jobTemplate"]["spec"]["template"]["spec"]


# ---------------------------------------------------------------------------
# The chart itself
# ---------------------------------------------------------------------------

def test_app_version_is_meson_builds_version_and_the_chart_version_equals_it():
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    m = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", (ROOT / "meson.build").read_text(), re.S)
    assert m, "no version in meson.build's project()"
    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == m.group(1)
    assert meta["version"] == meta["appVersion"]


@pytest.mark.parametrize("copy,original", [
    ("files/policy.yaml", "policy.yaml"),
    ("files/rules.yaml", "monitoring/rules.yaml"),
])
def test_the_charts_copies_equal_deploys_files(copy, original):
    assert (CHART / copy).read_bytes() == (DEPLOY / original).read_bytes(), \
        f"{copy} differs from deploy/{original}: copy it again (cp deploy/{original} {CHART.relative_to(ROOT)}/{copy})"


def test_the_dashboard_is_deploys_dashboard():
    """files/grafana-dashboard.json is a copy of
    deploy/monitoring/grafana-dashboard.json; while that file does not exist,
    the chart's own is checked to be a dashboard."""
    copy = CHART / "files" / "grafana-dashboard.json"
    original = DEPLOY / "monitoring" / "grafana-dashboard.json"
    if original.exists():
        assert copy.read_bytes() == original.read_bytes(), \
            f"the chart's dashboard differs from {original.relative_to(ROOT)}: copy it again"
    dashboard = json.loads(copy.read_text())
    assert dashboard["title"] and dashboard["panels"]


LINT_CASES = {
    "defaults": [],
    "cert-manager": ["--values", VALUES / "cert-manager.yaml"],
    "cluster-issuer": ["--values", VALUES / "cluster-issuer.yaml"],
    "digest": ["--values", VALUES / "digest.yaml"],
    "existing-configmap": ["--values", VALUES / "existing-configmap.yaml"],
    "inline-policy": ["--values", VALUES / "inline-policy.yaml"],
    "failure-policies": ["--values", VALUES / "failure-policies.yaml"],
    "everything": ["--values", VALUES / "everything.yaml", "--set-file", AP_FILE],
}


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "strict"])
@pytest.mark.parametrize("case", list(LINT_CASES))
def test_helm_lint(helm, case, strict):
    args = ["lint", CHART, "--namespace", NAMESPACE, *LINT_CASES[case]] + (["--strict"] if strict else [])
    p = run(helm, *args, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in p.stdout, p.stdout
    assert "[ERROR]" not in p.stdout and "[WARNING]" not in p.stdout, p.stdout


# ---------------------------------------------------------------------------
# The defaults: deploy/base's objects
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(kustomize) -> dict:
    return by_key(kustomize(DEPLOY / "base"))


@pytest.fixture(scope="module")
def default(template) -> list[dict]:
    return template()


def test_the_default_chart_holds_the_bases_objects_but_its_namespace(base, default):
    chart = by_key(default)
    assert set(chart) == set(base) - {("Namespace", NAMESPACE)}
    for (kind, name), o in chart.items():
        if "namespace" in base[(kind, name)]["metadata"]:
            assert o["metadata"]["namespace"] == NAMESPACE, (kind, name)


def test_every_default_object_is_the_bases_but_for_helms_labels(base, default):
    """Whole objects: the Deployment's args, ports, probes, security
    contexts, scheduling and volumes, the webhooks' rules, selectors and
    matchConditions, the policy, RBAC, the Service and the budget."""
    for (kind, name), o in by_key(default).items():
        assert normalized(o) == base[(kind, name)], f"{kind}/{name} drifted from deploy/base"
        labels = o["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm" and labels["app.kubernetes.io/instance"]


def test_the_default_deployment_pulls_if_not_present(default):
    (c,) = pod_spec(default)["containers"]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["image"] == "myregistry.azurecr.io/spark-identity-webhook:0.1.0"


def test_namespace_create_makes_the_namespace_as_the_base_does(base, template):
    got = one(template(set=["namespace.create=true"]), "Namespace")
    assert normalized(got) == base[("Namespace", NAMESPACE)]


def test_the_release_namespace_replaces_the_bases_everywhere(template):
    objs = template(namespace="identity")
    text = yaml.safe_dump_all(objs)
    assert NAMESPACE not in text
    hooks = webhooks(objs)
    for key, w in hooks.items():
        assert w["clientConfig"]["service"]["namespace"] == "identity", key
        if key[1] == "namespace-grants.spark-identity.io":
            assert "namespaceSelector" not in w   # namespaces are cluster-scoped
            continue
        sel = w["namespaceSelector"]["matchExpressions"][0]
        if key[0] == "policy":
            assert sel == {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["identity"]}
        else:
            assert sel["values"] == ["kube-system", "identity"], key
    (subject,) = one(objs, "ClusterRoleBinding")["subjects"]
    assert subject["namespace"] == "identity"


# ---------------------------------------------------------------------------
# Values land where they should
# ---------------------------------------------------------------------------

def test_image_digest_registry_pull_policy_and_secrets(template):
    objs = template("digest.yaml", set=["audit.enabled=true"])
    digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    for kind in ("Deployment", "CronJob"):
        spec = pod_spec(objs, kind)
        (c,) = spec["containers"]
        assert c["image"] == f"registry.example.com/platform/siw@{digest}", kind
        assert c["imagePullPolicy"] == "Always"
        assert spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "regcred2"}]


def test_image_tag_and_no_registry(template):
    (c,) = pod_spec(template(set=["image.registry=", "image.tag=1.2.3"]))["containers"]
    assert c["image"] == "spark-identity-webhook:1.2.3"


def test_scheduling_values(template):
    objs = template("everything.yaml", set_file=[AP_FILE])
    d = one(objs, "Deployment")
    spec = d["spec"]["template"]["spec"]
    assert d["spec"]["replicas"] == 3
    assert spec["containers"][0]["resources"] == {"requests": {"cpu": "100m", "memory": "64Mi"},
                                                  "limits": {"cpu": "2", "memory": "256Mi"}}
    assert spec["priorityClassName"] == "platform-critical"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "agentpool": "system"}
    assert spec["tolerations"] == [{"key": "CriticalAddonsOnly", "operator": "Exists"}]
    assert spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    (spread,) = spec["topologySpreadConstraints"]
    assert spread == {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                      "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "team-identity-webhook"}},
                      "matchLabelKeys": ["pod-template-hash"]}
    assert one(objs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2


def test_no_priority_class_spread_or_budget_when_turned_off(template):
    objs = template(set=["priorityClassName=", "topologySpread.enabled=false", "podDisruptionBudget.enabled=false",
                         "nodeSelector=null"])
    spec = pod_spec(objs)
    assert "priorityClassName" not in spec and "topologySpreadConstraints" not in spec and "nodeSelector" not in spec
    assert not [o for o in objs if o["kind"] == "PodDisruptionBudget"]


def test_fullname_override_names_every_object_and_cluster_scoped_ones_do_not_collide(template, default):
    objs = template("everything.yaml", set_file=[AP_FILE])
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for kind in ("Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                 "MutatingWebhookConfiguration", "NetworkPolicy", "ServiceMonitor", "PrometheusRule"):
        assert (kind, "team-identity-webhook") in names, kind
    assert ("ValidatingWebhookConfiguration", "team-identity-webhook-policy") in names
    assert ("ConfigMap", "team-identity-policy") in names
    assert ("ClusterRole", "team-identity-audit") in names
    cluster_scoped = {n for n in names if n[0] in ("ClusterRole", "ClusterRoleBinding") + WEBHOOK_KINDS}
    default_names = {(o["kind"], o["metadata"]["name"]) for o in default}
    assert not cluster_scoped & default_names


def test_policy_content_as_a_string_is_stored_byte_for_byte(template, tmp_path):
    text = "# mine\nnamespaces:\n  analytics: {identity: a-spark}\nunmatched: allow\n\n"
    f = tmp_path / "policy.yaml"
    f.write_text(text)
    objs = template(set_file=[f"policy.content={f}"])
    cm = by_key(objs)[("ConfigMap", "spark-identity-policy")]
    assert cm["data"] == {"policy.yaml": text}


def test_policy_content_as_a_map_is_written_as_yaml(template):
    cm = by_key(template("inline-policy.yaml"))[("ConfigMap", "spark-identity-policy")]
    assert yaml.safe_load(cm["data"]["policy.yaml"]) == yaml.safe_load(
        (VALUES / "inline-policy.yaml").read_text())["policy"]["content"]


def test_an_existing_configmap_replaces_the_charts(template):
    objs = template("existing-configmap.yaml")
    assert not [o for o in objs if o["kind"] == "ConfigMap"]
    for kind in ("Deployment", "CronJob"):
        vols = {v["name"]: v for v in pod_spec(objs, kind)["volumes"]}
        assert vols["policy"]["configMap"] == {"name": "my-policy"}, kind
    (cond,) = webhooks(objs)[("policy", "policy.spark-identity.io")]["matchConditions"]
    assert cond["expression"] == "object.metadata.name == 'my-policy'"


def test_secret_mode_puts_the_ca_bundle_in_every_webhook(template):
    objs = template(set=["certs.caBundle=Y2EK", "certs.secretName=my-tls"])
    hooks = webhooks(objs)
    assert len(hooks) == 5
    for key, w in hooks.items():
        assert w["clientConfig"]["caBundle"] == "Y2EK", key
    vols = {v["name"]: v for v in pod_spec(objs)["volumes"]}
    assert vols["tls"]["secret"] == {"secretName": "my-tls"}
    assert not [o for o in objs if o["kind"] in ("Certificate", "Issuer")]


def test_cert_manager_mode_is_deploy_cert_managers(template, kustomize):
    objs = template("cert-manager.yaml")
    want = by_key(kustomize(DEPLOY / "cert-manager"))
    got = by_key(objs)
    for o in objs:
        if o["kind"] in WEBHOOK_KINDS:
            assert o["metadata"]["annotations"] == {
                "cert-manager.io/inject-ca-from": f"{NAMESPACE}/spark-identity-webhook"}
            for w in o["webhooks"]:
                assert "caBundle" not in w["clientConfig"], (o["metadata"]["name"], w["name"])
            assert normalized(o) == want[(o["kind"], o["metadata"]["name"])]
    for key in [k for k in want if k[0] in ("Certificate", "Issuer")]:
        o = normalized(got[key])
        if key == ("Certificate", "spark-identity-webhook"):
            assert o["spec"]["duration"] == "2160h" and o["spec"]["renewBefore"] == "360h"
            o["spec"]["duration"], o["spec"]["renewBefore"] = "8760h", "720h"
        assert o == want[key], key
    assert {k for k in got if k[0] in ("Certificate", "Issuer")} == {k for k in want if k[0] in ("Certificate", "Issuer")}


def test_cert_manager_with_a_cluster_issuer_makes_no_issuer(template):
    objs = template("cluster-issuer.yaml")
    assert not [o for o in objs if o["kind"] == "Issuer"]
    cert = one(objs, "Certificate")
    assert cert["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert cert["spec"]["secretName"] == "webhook-serving"
    vols = {v["name"]: v for v in pod_spec(objs)["volumes"]}
    assert vols["tls"]["secret"] == {"secretName": "webhook-serving"}


def test_each_webhooks_failure_policy_and_timeout(template, default):
    hooks = webhooks(template("failure-policies.yaml"))
    want = {("MutatingWebhookConfiguration", "spark-pods.spark-identity.io"): ("Ignore", 3),
            ("MutatingWebhookConfiguration", "identity-claims.spark-identity.io"): ("Ignore", 4),
            ("ValidatingWebhookConfiguration", "identity-claims.spark-identity.io"): ("Ignore", 7),
            ("ValidatingWebhookConfiguration", "namespace-grants.spark-identity.io"): ("Ignore", 9),
            ("policy", "policy.spark-identity.io"): ("Fail", 30)}
    assert {k: (w["failurePolicy"], w["timeoutSeconds"]) for k, w in hooks.items()} == want
    defaults = {k: w["failurePolicy"] for k, w in webhooks(default).items()}
    assert defaults.pop(("policy", "policy.spark-identity.io")) == "Ignore"
    assert set(defaults.values()) == {"Fail"}


def test_namespace_grants_label_keys_in_its_match_conditions(template, default):
    hook = webhooks(template("failure-policies.yaml"))[("ValidatingWebhookConfiguration",
                                                         "namespace-grants.spark-identity.io")]
    (cond,) = hook["matchConditions"]
    assert cond["expression"].count("k in ['env', 'example.com/tier']") == 2
    (base_cond,) = webhooks(default)[("ValidatingWebhookConfiguration",
                                      "namespace-grants.spark-identity.io")]["matchConditions"]
    assert cond["expression"] == base_cond["expression"].replace("k in []", "k in ['env', 'example.com/tier']")


def test_webhooks_url_replaces_the_service(template):
    hooks = webhooks(template("everything.yaml", set_file=[AP_FILE]))
    for key, w in hooks.items():
        path = {"MutatingWebhookConfiguration": "/mutate", "ValidatingWebhookConfiguration": "/validate",
                "policy": "/validate-policy"}[key[0]]
        assert w["clientConfig"] == {"url": f"https://webhook.example.com:8443{path}", "caBundle": "Y2EK"}, key


def test_the_admission_policy_is_the_rendered_file(template):
    objs = template(set=["admissionPolicy.enabled=true"], set_file=[AP_FILE])
    want = objects(ADMISSION_POLICY.read_text())
    got = [o for o in objs if o["kind"] in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
           or o["metadata"]["name"] == "spark-identity-claims"]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key)


def test_the_admission_policy_must_be_rendered_for_the_release_namespace(template):
    p = template(set=["admissionPolicy.enabled=true"], set_file=[AP_FILE], namespace="identity", check=False)
    assert p.returncode != 0
    assert ("admissionPolicy.rendered: rendered for namespace spark-identity-system, not the release's identity: "
            "render it again with --namespace identity") in p.stderr


def test_the_admission_policy_must_be_rendered_from_the_installed_policy(template, tmp_path):
    f = tmp_path / "policy.yaml"
    f.write_text("namespaces:\n  other: {identity: o-spark}\n")
    p = template(set=["admissionPolicy.enabled=true"], set_file=[AP_FILE, f"policy.content={f}"], check=False)
    assert p.returncode != 0
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    assert (f"the chart installs the policy with sha256 {sha}: render it again from the policy.yaml of "
            "policy.content") in p.stderr


def test_the_admission_policy_accepts_only_what_render_prints(template, tmp_path):
    f = tmp_path / "ap.yaml"
    f.write_text(ADMISSION_POLICY.read_text() + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: x}\n")
    p = template(set=["admissionPolicy.enabled=true"], set_file=[f"admissionPolicy.rendered={f}"], check=False)
    assert p.returncode != 0 and "admissionPolicy.rendered: holds a Secret" in p.stderr


def test_the_network_policy_is_deploy_network_policys(template, kustomize, tmp_path):
    objs = template(set=["networkPolicy.enabled=true", "networkPolicy.apiServerCIDRs={20.50.60.70/32}"])
    overlay = tmp_path / "np"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{rel(DEPLOY / 'base', overlay)}]\ncomponents: [{rel(DEPLOY / 'network-policy', overlay)}]\n")
    want = one(kustomize(overlay), "NetworkPolicy")
    want["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"] = "20.50.60.70/32"
    assert normalized(one(objs, "NetworkPolicy")) == want


def test_the_network_policys_control_plane_cidrs_ports_and_monitoring_namespace(template):
    np = one(template("everything.yaml", set_file=[AP_FILE]), "NetworkPolicy")["spec"]
    assert np["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "team-identity-webhook"}}
    assert np["ingress"][0]["from"] == [{"ipBlock": {"cidr": "10.224.0.0/24"}}]
    assert np["ingress"][1]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "observability"}
    assert np["egress"] == [{"to": [{"ipBlock": {"cidr": "20.50.60.70/32"}}],
                             "ports": [{"protocol": "TCP", "port": 443}]}]


def test_audit_is_deploy_audits(template, kustomize, tmp_path):
    objs = template(set=["audit.enabled=true"])
    overlay = tmp_path / "audit"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{rel(DEPLOY / 'base', overlay)}]\ncomponents: [{rel(DEPLOY / 'audit', overlay)}]\n")
    want = by_key(kustomize(overlay))
    got = by_key(objs)
    audit = [k for k in want if "audit" in k[1]]
    assert len(audit) == 4, audit
    for k in audit:
        o = normalized(got[k])
        if k[0] == "CronJob":
            # The chart runs it on the Deployment's nodes (a Linux image); the base does not say.
            spec = o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            assert spec.pop("nodeSelector") == pod_spec(objs)["nodeSelector"] == {"kubernetes.io/os": "linux"}
        assert o == want[k], k
    assert {k for k in got if "audit" in k[1]} == set(audit)


def test_audit_schedule_and_suspend(template):
    cron = one(template("everything.yaml", set_file=[AP_FILE]), "CronJob")
    assert cron["spec"]["suspend"] is True and cron["spec"]["schedule"] == "0 3 * * *"
    assert cron["metadata"]["name"] == "team-identity-audit"
    assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] == "team-identity-audit"


def test_monitoring_is_deploy_monitorings(template, kustomize):
    objs = template(set=["metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true",
                         "metrics.dashboard.enabled=true"])
    want = by_key(kustomize(DEPLOY / "monitoring"))
    got = by_key(objs)
    for k in want:
        assert normalized(got[k]) == want[k], k
    rules = yaml.safe_load((DEPLOY / "monitoring" / "rules.yaml").read_text())
    assert got[("PrometheusRule", "spark-identity-webhook")]["spec"]["groups"] == rules["groups"]
    dash = got[("ConfigMap", "spark-identity-webhook-dashboard")]
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dash["metadata"]["namespace"] == NAMESPACE
    assert dash["data"] == {"grafana-dashboard.json": (CHART / "files" / "grafana-dashboard.json").read_text()}


def test_monitoring_values_and_the_rules_job_follow_the_name(template):
    got = by_key(template("everything.yaml", set_file=[AP_FILE]))
    sm = got[("ServiceMonitor", "team-identity-webhook")]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    rule = got[("PrometheusRule", "team-identity-webhook")]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
    assert 'job="team-identity-webhook"' in exprs and 'job="spark-identity-webhook"' not in exprs
    assert got[("ConfigMap", "team-identity-webhook-dashboard")]["metadata"]["namespace"] == "grafana"


def test_nothing_optional_by_default(default):
    kinds = {o["kind"] for o in default}
    assert not kinds & {"NetworkPolicy", "CronJob", "ServiceMonitor", "PrometheusRule", "Certificate",
                        "ValidatingAdmissionPolicy", "Namespace"}


def test_notes_say_what_was_installed_and_how_to_check_it(helm, tmp_path):
    p = run(helm, "install", "siw", CHART, "--dry-run=client", "--namespace", "identity",
            "--set", "certs.caBundle=" + base64.b64encode(b"ca").decode())
    assert "spark-identity-webhook 0.1.0 is installed in the namespace identity" in p.stdout
    assert "kubectl -n identity rollout status deployment/spark-identity-webhook" in p.stdout
    assert "WARNING: the policy is the chart's example" in p.stdout
    assert "certs.caBundle is empty" not in p.stdout


# ---------------------------------------------------------------------------
# Values the schema refuses
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--set", "webhooks.sparkPods.failurePolicy=Maybe"],
     "at '/webhooks/sparkPods/failurePolicy': value must be one of 'Fail', 'Ignore'"),
    (["--set", "webhooks.identityClaims.timeoutSeconds=99"],
     "at '/webhooks/identityClaims/timeoutSeconds': maximum: got 99, want 30"),
    (["--set", "webhooks.policyConfigMap.timeoutSeconds=0"],
     "at '/webhooks/policyConfigMap/timeoutSeconds': minimum: got 0, want 1"),
    (["--set", "replicas=two"], "at '/replicas': got string, want integer"),
    (["--set", "networkPolicy.enabled=true"], "at '/networkPolicy/apiServerCIDRs': minItems: got 0, want 1"),
    (["--set", "networkPolicy.enabled=true", "--set", "networkPolicy.apiServerCIDRs={API-SERVER-ADDRESS/32}"],
     "at '/networkPolicy/apiServerCIDRs/0': 'API-SERVER-ADDRESS/32' does not match pattern"),
    (["--set", "admissionPolicy.enabled=true"], "at '/admissionPolicy/rendered': minLength: got 0, want 1"),
    (["--set", "nope=1"], "at '': additional properties 'nope' not allowed"),
    (["--set", "webhooks.sparkPods.retries=1"], "at '/webhooks/sparkPods': additional properties 'retries' not allowed"),
    (["--set", "image.pullPolicy=Sometimes"], "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"),
    (["--set", "certs.mode=vault"], "at '/certs/mode': value must be one of 'secret', 'certManager'"),
    (["--set", "webhooks.url=http://insecure:80"], "at '/webhooks/url': 'http://insecure:80' does not match pattern"),
    (["--set", "webhooks.namespaceGrants.labelKeys={a')||true||('}"],
     "at '/webhooks/namespaceGrants/labelKeys/0'"),
])
def test_wrong_values_fail_with_the_schemas_message(template, helm, args, message):
    for cmd in (["template", "t"], ["install", "t", "--dry-run=client"]):
        p = run(helm, *cmd, CHART, "--namespace", NAMESPACE, *args, check=False)
        assert p.returncode != 0, (cmd, p.stdout[-500:])
        assert "values don't meet the specifications of the schema" in p.stderr, p.stderr
        assert message in p.stderr, p.stderr
