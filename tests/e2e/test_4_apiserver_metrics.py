"""Last: the API server's own measure of us,
apiserver_admission_webhook_admission_duration_seconds for our webhooks.
Two bursts of server-side dry runs give the tail some samples: one call at a
time, then PARALLEL at a time (on 2 cores shared by kube-apiserver, etcd, the
webhook and the client). The p99 of each burst, and of every call of the
suite (those while the webhook was down included), is printed and written to
BUILD/e2e-webhook-latency.txt."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import BUILD_DIR, cp, fixture_object, model, unique

METRIC = "apiserver_admission_webhook_admission_duration_seconds"
SEQUENTIAL = 100
BURST = 200
PARALLEL = 4


def _ms(s: float) -> str:
    return f"{s * 1000:.1f} ms"


def _samples(cluster):
    status, text = cluster.get("/metrics")
    assert status == 200, text[:500]
    return cp.parse_metrics(text)


def _snapshot(cluster, names) -> tuple[list[tuple[float, float]], float, float]:
    return cp.histogram(_samples(cluster), METRIC, lambda l: l.get("name") in names)


def _minus(after, before):
    b_buckets = dict(before[0])
    return ([(le, c - b_buckets.get(le, 0.0)) for le, c in after[0]], after[1] - before[1], after[2] - before[2])


def _describe(label: str, hist) -> str:
    buckets, total, count = hist
    p99 = cp.histogram_quantile(0.99, buckets)
    bound = next(le for le, c in buckets if c >= 0.99 * count)
    lower = max([le for le, c in buckets if le < bound] or [0.0])
    hi = "+Inf" if math.isinf(bound) else _ms(bound)
    return (f"  {label} ({int(count)} calls): p99 {_ms(p99)} (histogram_quantile; the call lies in "
            f"({_ms(lower)}, {hi}]), mean {_ms(total / count)}; buckets "
            + ", ".join(f"le {'+Inf' if math.isinf(le) else le}: {int(c)}" for le, c in buckets))


@pytest.fixture(scope="module")
def measured(kubectl, cluster, registration):
    """Runs both bursts, straight to the API (kubectl would spend most of
    the time starting up), and keeps the histogram between them."""
    names = set(registration.webhook_names)
    pod = unique(fixture_object("spark35-driver.json"), "burst")

    def one(_):
        return cluster.request("POST", "/api/v1/namespaces/team-a/pods?dryRun=All", pod)

    before = _snapshot(cluster, names)
    seq = [one(i) for i in range(SEQUENTIAL)]
    middle = _snapshot(cluster, names)
    with ThreadPoolExecutor(PARALLEL) as ex:
        par = list(ex.map(one, range(BURST)))
    after = _snapshot(cluster, names)
    samples = _samples(cluster)
    per_webhook = {n: cp.histogram(samples, METRIC, lambda l, n=n: l.get("name") == n) for n in sorted(names)}
    return {"names": names, "results": seq + par, "suite": after, "per_webhook": per_webhook,
            "sequential": _minus(middle, before), "parallel": _minus(after, middle)}


def test_every_call_of_the_bursts_is_mutated(measured):
    bad = [(st, body.get("message")) for st, body in measured["results"]
           if st != 201 or body["metadata"]["labels"].get(model.IDENTITY_LABEL) != "sparkaks"]
    assert not bad, f"{len(bad)} of {len(measured['results'])} not mutated: {bad[:3]}"


def test_apiserver_admission_webhook_latency_p99(measured, cluster, capsys):
    suite, seq, par = measured["suite"], measured["sequential"], measured["parallel"]
    # A Spark pod may meet more than one of our webhooks (each is one call).
    assert seq[2] >= SEQUENTIAL and par[2] >= BURST, (seq[2], par[2])
    report = "\n".join([
        f"{METRIC}{{name in {sorted(measured['names'])}}}, kube-apiserver {cluster.version()}, "
        "webhook on loopback, 2 cores:",
        _describe(f"{SEQUENTIAL} Spark drivers one at a time", seq),
        _describe(f"{BURST} Spark drivers {PARALLEL} at a time", par),
        _describe("whole suite", suite),
        *[_describe(f"whole suite, {n}", h) for n, h in measured["per_webhook"].items() if h[2]],
        "  (bucket bounds 5, 25, 100, 500 ms ...: a p99 inside a bucket is interpolated)",
    ])
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    (BUILD_DIR / "e2e-webhook-latency.txt").write_text(report + "\n")
    with capsys.disabled():
        print("\n" + report)
    # Loopback and small pods: far below the webhook's timeout.
    assert cp.histogram_quantile(0.99, suite[0]) < 1.0, report
