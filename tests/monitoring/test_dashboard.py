"""deploy/monitoring/grafana-dashboard.json checked as Grafana would read it
and by a real Prometheus scraping the real server (WEBHOOK_BIN): the JSON is a
dashboard (uid, variables, unique panel ids, a place on the grid for each
panel, every query on the data source variable); every metric it names is one
the server exports (or, for the namespace cache's, one metrics.c writes), and
every family the server exports is on it; every expression, its variables
given the values Grafana would, is evaluated by Prometheus without error, and
after admissions of each kind and a refused then an applied policy reload,
each returns what the server did; kubectl's kustomize ships it as the
sidecar's ConfigMap, byte for byte."""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from test_monitoring import BIN, METRIC, MON, NAMESPACE_CACHE_ONLY, ROOT, api, free_port, wait_for

DASHBOARD = MON / "grafana-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
JOB = "spark-identity-webhook"
NAMESPACE = "spark-identity-system"
# The variables every selector filters on, and Grafana's own that the
# queries use, with what the tests give them.
FILTERS = ("job", "namespace", "instance")
RATE_INTERVAL = "2m"   # wider than the test: the admissions stay in the window
BUILTINS = {"__rate_interval": RATE_INTERVAL}
# kubectl apply (client side) keeps the object, as JSON, in an annotation;
# the API server refuses annotations over 256 KiB in all.
ANNOTATION_MAX = 262144
VAR = re.compile(r"\$\{?(\w+)\}?")
SELECTOR = re.compile(r"\b(spark_identity_webhook_[a-z0-9_]+|up)(\{[^}]*\})?")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def queries(d: dict | None = None) -> list:
    """(panel, target) for every query of every panel."""
    d = d or dashboard()
    return [(p, t) for p in d["panels"] for t in p.get("targets", [])]


def variables(d: dict | None = None) -> dict:
    return {v["name"]: v for v in (d or dashboard())["templating"]["list"]}


def panel(title: str) -> dict:
    found = [p for p in dashboard()["panels"] if p["title"] == title]
    assert len(found) == 1, title
    return found[0]


def test_dashboard_is_a_grafana_dashboard():
    d = dashboard()
    assert d["uid"] == "spark-identity-webhook" and d["title"]
    assert d["schemaVersion"] >= 36
    assert d.get("id") is None  # provisioned or imported: Grafana gives the id
    v = variables(d)
    assert v["datasource"]["type"] == "datasource" and v["datasource"]["query"] == "prometheus"
    for name in FILTERS:
        assert v[name]["type"] == "query" and v[name]["datasource"] == DATASOURCE, name
        assert v[name]["query"].startswith("label_values("), name
    # job picks one; namespace and instance may be several, All matching a
    # target without the label too (a Prometheus without the operator).
    assert not v["job"]["includeAll"]
    assert all(v[n]["includeAll"] and v[n]["multi"] and v[n]["allValue"] == ".*" for n in ("namespace", "instance"))
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "xywh") and g["w"] > 0 and g["h"] > 0, p["title"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] == "row":
            assert "targets" not in p, p["title"]
            continue
        assert p["type"] in ("timeseries", "stat"), p["title"]
        assert p["title"] and p["description"], p["id"]
        assert p["datasource"] == DATASOURCE, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE, p["title"]
            assert t["expr"].strip(), p["title"]


def test_every_query_filters_on_the_variables_and_names_no_unknown_variable():
    d = dashboard()
    known = set(variables(d)) | set(BUILTINS)
    for p, t in queries(d):
        assert set(VAR.findall(t["expr"])) <= known, (p["title"], t["expr"])
        selectors = SELECTOR.findall(t["expr"])
        assert selectors, (p["title"], t["expr"])
        for name, labels in selectors:
            for var in FILTERS:
                assert f'{var}=~"${var}"' in labels, f"{p['title']}: {name} not filtered on ${var}"
    for v in variables(d).values():
        assert set(VAR.findall(v["query"])) <= known, v["name"]


def test_dashboard_shows_only_metrics_metrics_c_writes():
    source = (ROOT / "webhook" / "io" / "metrics.c").read_text()
    for p, t in queries():
        for name in METRIC.findall(t["expr"]):
            family = re.sub(r"_(bucket|sum|count)$", "", name).removeprefix("spark_identity_webhook_")
            assert re.search(f'NS "{family}[ {{{{]', source), f"{p['title']}: {name} is not in webhook/io/metrics.c"


def test_kustomize_ships_the_dashboard_to_the_grafana_sidecar():
    bindir = os.environ.get("E2E_BIN_DIR")
    if not bindir:
        p = subprocess.run([str(ROOT / "tests" / "e2e" / "build-control-plane.sh")], capture_output=True, text=True)
        assert p.returncode == 0, "tests/e2e/build-control-plane.sh (kubectl):\n" + p.stderr[-3000:]
        bindir = p.stdout.strip().splitlines()[-1]
    p = subprocess.run([str(Path(bindir) / "kubectl"), "kustomize", str(MON)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    docs = [x for x in yaml.safe_load_all(p.stdout) if x]
    assert sorted(x["kind"] for x in docs) == ["ConfigMap", "PrometheusRule", "ServiceMonitor"]
    cm = next(x for x in docs if x["kind"] == "ConfigMap")
    assert cm["metadata"]["name"] == "spark-identity-webhook-dashboard"  # no hash suffix
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"] == {"grafana-dashboard.json": DASHBOARD.read_text()}
    assert len(json.dumps(cm).encode()) < ANNOTATION_MAX


def grafana_regex(values: list) -> str:
    """A variable's values as Grafana's Prometheus data source writes them
    into a query: each regex metacharacter escaped for the regex and that
    backslash again for PromQL's string (127\\\\.0...), several as (a|b). (The
    names here hold no backslash, which Grafana doubles twice.)"""
    escaped = [re.sub(r"([\^$.|?*+()\[\]{}'])", r"\\\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(expr: str, values: dict) -> str:
    out = VAR.sub(lambda m: values[m.group(1)], expr)
    assert "$" not in out, out
    return out


def label_values(base: str, query: str, values: dict) -> list:
    """Grafana's label_values(METRIC{...}, LABEL) asked of Prometheus."""
    m = re.fullmatch(r"label_values\((.+), (\w+)\)", substitute(query, values))
    assert m, query
    return api(base, f"label/{m.group(2)}/values", **{"match[]": m.group(1)})


def post(url: str, body: bytes, ctx) -> dict | None:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        return json.load(urllib.request.urlopen(req, context=ctx, timeout=5))
    except urllib.error.HTTPError as e:
        assert e.code == 400, e.code
        return None


def sample(base: str, query: str) -> list:
    return api(base, "query", query=query)["result"]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The server and a Prometheus scraping it with the labels the
    ServiceMonitor gives (job, namespace); then, once Prometheus has the
    counters at zero, admissions of each kind, a bad body, a refused policy
    reload and an applied one, each seen by a scrape."""
    tmp = tmp_path_factory.mktemp("dashboard")
    assert BIN.exists(), f"{BIN} is not built"
    p = subprocess.run([str(BIN), "certs", "--service", JOB, "--namespace", NAMESPACE, "--out", str(tmp),
                        "--ip", "127.0.0.1"], capture_output=True)
    assert p.returncode == 0, p.stderr
    policy = tmp / "policy.yaml"
    good = (ROOT / "deploy" / "policy.yaml").read_bytes()
    policy.write_bytes(good)
    https, metrics, prom = free_port(), free_port(), free_port()
    target = f"127.0.0.1:{metrics}"
    procs = []
    try:
        server = subprocess.Popen(
            [str(BIN), "serve", "--policy", str(policy), "--tls-cert", str(tmp / "tls.crt"), "--tls-key",
             str(tmp / "tls.key"), "--listen", f"127.0.0.1:{https}", "--metrics-listen", target],
            stdout=open(tmp / "server.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append(server)
        (tmp / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": JOB, "static_configs": [
                {"targets": [target], "labels": {"namespace": NAMESPACE}}]}]}))
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom}"],
            stdout=open(tmp / "prometheus.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{prom}"
        wait_for("a first scrape of the server", lambda: sample(
            base, "sum(spark_identity_webhook_admission_requests_total) == 0"), 30)
        ctx = ssl.create_default_context(cafile=str(tmp / "ca.crt"))
        fixtures = ROOT / "tests" / "fixtures"
        answers = {}
        for name in ("spark33-executor.json", "spark35-driver.json", "rogue-pod.json", "nginx-pod.json"):
            answers[name] = post(f"https://127.0.0.1:{https}/mutate?timeout=10s", (fixtures / name).read_bytes(), ctx)
        assert post(f"https://127.0.0.1:{https}/mutate?timeout=10s", b"{not json", ctx) is None
        assert answers["rogue-pod.json"]["response"]["allowed"] is False
        assert answers["spark33-executor.json"]["response"].get("patch")
        wait_for("the admissions scraped", lambda: sample(
            base, "sum(spark_identity_webhook_admission_requests_total) >= 4"), 30)
        policy.write_text("this is not: [a policy\n")
        server.send_signal(signal.SIGHUP)
        wait_for("the refused reload scraped", lambda: sample(
            base, "spark_identity_webhook_policy_reload_failing == 1"), 30)
        applied = good + b"\n# edited: a new policy, applied (the same bytes again are only unchanged)\n"
        policy.write_bytes(applied)
        server.send_signal(signal.SIGHUP)
        wait_for("the applied reload scraped", lambda: sample(
            base, "spark_identity_webhook_policy_reload_failing == 0"), 30)
        exported = urllib.request.urlopen(f"http://{target}/metrics", timeout=5).read().decode()
        yield {"base": base, "target": target, "exported": exported, "sha256": hashlib.sha256(applied).hexdigest()}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def grafana_values(base: str, all_: bool) -> dict:
    """The variables' values as Grafana would set them, each asked of
    Prometheus through the variable's own query: the first job, then each
    namespace and instance (or All)."""
    v = variables()
    values = dict(BUILTINS)
    for name in FILTERS:
        found = label_values(base, v[name]["query"], values)
        assert found, f"${name}: {v[name]['query']} found nothing"
        values[name] = found[0] if name == "job" else (v[name]["allValue"] if all_ else grafana_regex(found))
    return values


def test_variables_find_the_server(live):
    v, values = variables(), dict(BUILTINS)
    for name, want in (("job", [JOB]), ("namespace", [NAMESPACE]), ("instance", [live["target"]])):
        assert label_values(live["base"], v[name]["query"], values) == want, name
        values[name] = grafana_regex(want)


def test_every_metric_on_the_dashboard_is_exported_and_every_family_is_on_it(live):
    names = set(api(live["base"], "label/__name__/values"))
    shown = {n for _, t in queries() for n in METRIC.findall(t["expr"])}
    for name in shown - NAMESPACE_CACHE_ONLY:
        assert name in names, f"{name} is not a metric Prometheus has from the server"
        assert re.search(rf"^{name}[{{ ]", live["exported"], re.M), name
    families = set(re.findall(r"^# TYPE (spark_identity_webhook_\w+) ", live["exported"], re.M))
    on = {re.sub(r"_(bucket|sum|count)$", "", n) for n in shown}
    assert families - on == set(), "exported but not on the dashboard"


@pytest.mark.parametrize("all_", [False, True], ids=["one-replica", "all"])
def test_every_expression_evaluates_and_shows_data(live, all_):
    base = live["base"]
    values = grafana_values(base, all_)
    now = time.time()
    for p, t in queries():
        expr = substitute(t["expr"], values)
        instant = json.load(urllib.request.urlopen(f"{base}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}), timeout=5))
        assert instant["status"] == "success" and not instant.get("warnings"), (p["title"], expr, instant)
        ranged = api(base, "query_range", query=expr, start=now - 120, end=now, step="5")
        if set(METRIC.findall(expr)) & NAMESPACE_CACHE_ONLY:
            continue  # no namespace cache here: evaluated, and empty
        assert instant["data"]["result"], f"{p['title']}: {expr} is empty"
        assert ranged["result"], f"{p['title']}: {expr} is empty over 2 minutes"


def shown(base: str, title: str, ref: str = "A", one_replica: bool = True) -> list:
    """(labels, value) of a panel's query now."""
    values = grafana_values(base, not one_replica)
    t = next(t for t in panel(title)["targets"] if t["refId"] == ref)
    return [(s["metric"], float(s["value"][1])) for s in sample(base, substitute(t["expr"], values))]


def test_the_panels_show_what_the_server_did(live):
    base = live["base"]
    decisions = {(m["decision"], m["role"]): v for m, v in shown(base, "Admission decisions / s by decision and role")}
    assert decisions[("mutated", "executor")] > 0 and decisions[("mutated", "driver")] > 0, decisions
    assert decisions[("denied", "none")] > 0 and decisions[("unchanged", "none")] > 0, decisions
    assert decisions[("would-mutate", "driver")] == 0, decisions
    assert [v > 0 for _, v in shown(base, "Denied / s")] == [True]
    assert {m["code"]: v > 0 for m, v in shown(base, "Bad requests / s by HTTP status")}["400"]
    assert [v for _, v in shown(base, "Replicas up")] == [1]
    assert [m["version"] for m, _ in shown(base, "Versions")] != [""]
    latency = [shown(base, "Admission latency", ref)[0][1] for ref in "ABCD"]
    assert all(math.isfinite(x) and 0 < x <= 1 for x in latency), latency
    assert latency[0] <= latency[1] <= latency[2], latency
    assert panel("Latency p99")["targets"][0]["expr"] == panel("Admission latency")["targets"][2]["expr"]
    [(_, days)] = shown(base, "Certificate days left")
    assert 1 < days < 3660, days
    assert [m["sha256"] for m, _ in shown(base, "Replicas per policy hash")] == [live["sha256"]]
    assert [v for _, v in shown(base, "Policy reload failing")] == [0]
    [(_, age)] = shown(base, "Time since the last successful policy load")
    assert 0 <= age < 60, age
    assert [v for _, v in shown(base, "Request memory", "B")][0] > 0
    assert [v for _, v in shown(base, "Open connections")][0] >= 0


def test_the_refused_reload_shows_then_clears(live):
    base, values = live["base"], grafana_values(live["base"], False)
    now = time.time()

    def over(title: str) -> dict:
        t = panel(title)["targets"][0]
        r = api(base, "query_range", query=substitute(t["expr"], values), start=now - 120, end=now, step="1")
        return {json.dumps(s["metric"], sort_keys=True): [float(v) for _, v in s["values"]] for s in r["result"]}

    [failing] = over("Policy reload failing by replica").values()
    assert 1 in failing and failing[-1] == 0, failing
    reloads = {json.loads(k)["result"]: max(v) for k, v in over("Policy reloads by result").items()}
    assert reloads["failed"] > 0 and reloads["ok"] > 0, reloads
    certificates = {json.loads(k)["result"]: max(v) for k, v in over("Certificate reloads by result").items()}
    assert certificates["ok"] > 0 and certificates["failed"] == 0, certificates  # SIGHUP reloads the pair too
