"""deploy/monitoring/ checked by the real Prometheus tools: promtool checks
rules.yaml and runs rules_test.yaml; a real Prometheus scrapes the real
server (WEBHOOK_BIN, default build/spark-identity-webhook) with rules.yaml
loaded, and every rule's expression and every metric name the rules use is
asked of it, so that a rule naming a metric the server does not export
fails; the PrometheusRule's groups equal rules.yaml's; every runbook_url is a
heading of README.md."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MON = ROOT / "deploy" / "monitoring"
RULES = MON / "rules.yaml"
BIN = Path(os.environ.get("WEBHOOK_BIN", ROOT / "build" / "spark-identity-webhook"))
METRIC = re.compile(r"\bspark_identity_webhook_[a-z0-9_]+")
# Exported only while the namespace cache runs (--watch-namespaces, an API
# server to watch): checked against the server's source instead.
NAMESPACE_CACHE_ONLY = {"spark_identity_webhook_namespace_watch_restarts_total",
                        "spark_identity_webhook_namespace_cache_size",
                        "spark_identity_webhook_namespace_reads_total"}


def groups() -> list:
    return yaml.safe_load(RULES.read_text())["groups"]


def rules() -> list:
    return [r for g in groups() for r in g["rules"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_promtool_check_rules():
    p = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_promtool_unit_tests():
    p = subprocess.run(["promtool", "test", "rules", "rules_test.yaml"], cwd=Path(__file__).parent,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_unit_tests_fire_and_quiet_every_alert():
    cases = yaml.safe_load((Path(__file__).parent / "rules_test.yaml").read_text())["tests"]
    fired, quiet = set(), set()
    for case in cases:
        for t in case["alert_rule_test"]:
            (fired if t.get("exp_alerts") else quiet).add(t["alertname"])
    alerts = {r["alert"] for r in rules()}
    assert alerts - fired == set(), "alerts never fired"
    assert alerts - quiet == set(), "alerts never shown quiet"


def test_prometheusrule_equals_rules_file():
    pr = yaml.safe_load((MON / "prometheusrule.yaml").read_text())
    assert pr["apiVersion"] == "monitoring.coreos.com/v1" and pr["kind"] == "PrometheusRule"
    assert pr["spec"]["groups"] == groups()
    kust = yaml.safe_load((MON / "kustomization.yaml").read_text())
    assert set(kust["resources"]) == {"servicemonitor.yaml", "prometheusrule.yaml"}
    sm = yaml.safe_load((MON / "servicemonitor.yaml").read_text())
    assert sm["kind"] == "ServiceMonitor" and sm["metadata"]["namespace"] == "spark-identity-system"
    assert [e["port"] for e in sm["spec"]["endpoints"]] == ["metrics"]
    svc = yaml.safe_load((ROOT / "deploy" / "base" / "service.yaml").read_text())
    assert "metrics" in [p["name"] for p in svc["spec"]["ports"]]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()


def slug(heading: str) -> str:
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def test_every_alert_has_labels_annotations_and_a_runbook():
    readme = (ROOT / "README.md").read_text()
    anchors = {slug(m) for m in re.findall(r"^#+ (.*)$", readme, re.M)}
    for r in rules():
        assert r["labels"]["severity"] in ("critical", "warning"), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        url = r["annotations"]["runbook_url"]
        assert url.startswith("README.md#"), r["alert"]
        assert url.split("#", 1)[1] in anchors, f"{r['alert']}: no README heading for {url}"


def wait_for(what, fn, timeout=20.0):
    end = time.monotonic() + timeout
    while True:
        try:
            v = fn()
            if v:
                return v
        except OSError:
            pass
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitoring")
    assert BIN.exists(), f"{BIN} is not built"
    p = subprocess.run([str(BIN), "certs", "--service", "spark-identity-webhook", "--namespace",
                        "spark-identity-system", "--out", str(tmp), "--ip", "127.0.0.1"], capture_output=True)
    assert p.returncode == 0, p.stderr
    https, metrics, prom = free_port(), free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen(
            [str(BIN), "serve", "--policy", str(ROOT / "deploy" / "policy.yaml"), "--tls-cert", str(tmp / "tls.crt"),
             "--tls-key", str(tmp / "tls.key"), "--listen", f"127.0.0.1:{https}",
             "--metrics-listen", f"127.0.0.1:{metrics}"],
            stdout=open(tmp / "server.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        shutil.copy(RULES, tmp / "rules.yaml")
        (tmp / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [{"job_name": "spark-identity-webhook",
                                "static_configs": [{"targets": [f"127.0.0.1:{metrics}"]}]}]}))
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom}"],
            stdout=open(tmp / "prometheus.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        wait_for("the server's /metrics",
                 lambda: urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=2).status == 200)
        ctx = ssl.create_default_context(cafile=str(tmp / "ca.crt"))
        fixtures = ROOT / "tests" / "fixtures"
        for body in [(fixtures / n).read_bytes() for n in ("spark33-executor.json", "rogue-pod.json",
                                                          "nginx-pod.json")] + [b"{not json"]:
            req = urllib.request.Request(f"https://127.0.0.1:{https}/mutate?timeout=10s", data=body,
                                         headers={"Content-Type": "application/json"},
                                         method="POST")
            try:
                urllib.request.urlopen(req, context=ctx, timeout=5).read()
            except urllib.error.HTTPError:
                pass  # the bad body's 400: what bad_requests_total counts
        exported = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5).read().decode()
        yield f"http://127.0.0.1:{prom}", exported
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def api(base: str, path: str, **params):
    url = f"{base}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    d = json.load(urllib.request.urlopen(url, timeout=5))
    assert d["status"] == "success", d
    return d["data"]


def test_rules_against_a_real_prometheus_and_server(stack):
    base, exported = stack
    # A scrape after the admissions: the counters Prometheus holds have moved.
    wait_for("Prometheus's scrape of the admissions", lambda: api(
        base, "query", query='sum(spark_identity_webhook_admission_requests_total) >= 3')["result"], 30)
    wait_for("the rules evaluated", lambda: all(
        r.get("lastEvaluation", "").startswith("2") and not r["lastEvaluation"].startswith("0001")
        for g in api(base, "rules")["groups"] for r in g["rules"]), 30)
    loaded = {r["name"] for g in api(base, "rules")["groups"] for r in g["rules"]}
    assert loaded == {r["alert"] for r in rules()}
    for g in api(base, "rules")["groups"]:
        for r in g["rules"]:
            assert r["health"] == "ok", r
    names = set(api(base, "label/__name__/values"))
    source = (ROOT / "webhook" / "io" / "metrics.c").read_text()
    for r in rules():
        api(base, "query", query=r["expr"])  # parses and evaluates
        for name in set(METRIC.findall(r["expr"])):
            if name in NAMESPACE_CACHE_ONLY:
                assert f'NS "{name.removeprefix("spark_identity_webhook_")} ' in source, name
                continue
            assert name in names, f"{r['alert']}: {name} is not a metric the server exports"
            assert api(base, "query", query=name)["result"], name
            assert re.search(rf"^{name}[{{ ]", exported, re.M), name
    up = api(base, "query", query='up{job="spark-identity-webhook"}')["result"]
    assert [s["value"][1] for s in up] == ["1"]
    # A healthy server fires nothing (pending from before the first scrape is fine).
    firing = [a["labels"]["alertname"] for a in api(base, "alerts")["alerts"] if a["state"] == "firing"]
    assert firing == [], firing
