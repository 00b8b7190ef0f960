"""Last: the API server's own measure of us. After a burst of server-side
dry runs (so the tail has some samples), the p99 of
apiserver_admission_webhook_admission_duration_seconds for our webhooks
(every call the suite made, the ones while it was down included) is printed
and written to BUILD/e2e-webhook-latency.txt."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

from conftest import BUILD_DIR, cp, fixture_object, model, unique

METRIC = "apiserver_admission_webhook_admission_duration_seconds"
BURST = 200
PARALLEL = 4


def _ms(s: float) -> str:
    return f"{s * 1000:.1f} ms"


def test_a_burst_of_spark_drivers_is_mutated(kubectl, cluster):
    """BURST server-side dry-run creations of a Spark driver in team-a,
    PARALLEL at a time, straight to the API (kubectl would spend most of
    the time starting up): every one comes back mutated."""
    pod = unique(fixture_object("spark35-driver.json"), "burst")

    def one(_):
        return cluster.request("POST", "/api/v1/namespaces/team-a/pods?dryRun=All", pod)

    with ThreadPoolExecutor(PARALLEL) as ex:
        results = list(ex.map(one, range(BURST)))
    bad = [(st, body.get("message")) for st, body in results
           if st != 201 or body["metadata"]["labels"].get(model.IDENTITY_LABEL) != "sparkaks"]
    assert not bad, f"{len(bad)} of {BURST} not mutated: {bad[:3]}"


def test_apiserver_admission_webhook_latency_p99(kubectl, cluster, registration, capsys):
    status, text = cluster.get("/metrics")
    assert status == 200, text[:500]
    samples = cp.parse_metrics(text)
    names = set(registration.webhook_names)
    buckets, total, count = cp.histogram(samples, METRIC, lambda l: l.get("name") in names)
    assert count >= BURST, f"{count} {METRIC} samples for {sorted(names)}, expected at least {BURST}"
    ok_buckets, ok_total, ok_count = cp.histogram(
        samples, METRIC, lambda l: l.get("name") in names and l.get("rejected") == "false")

    p99 = cp.histogram_quantile(0.99, buckets)
    assert not math.isnan(p99)
    bound = next(le for le, c in buckets if c >= 0.99 * count)
    lower = max([le for le, c in buckets if le < bound] or [0.0])
    lines = [
        f"{METRIC}{{name in {sorted(names)}}}, kube-apiserver {cluster.version()} on loopback, "
        f"end-to-end suite ({int(count)} calls):",
        f"  p99 {_ms(p99)} by histogram_quantile; the 99th percentile call lies in the bucket "
        f"({_ms(lower)}, {_ms(bound)}], which is all a histogram with these bounds can tell",
        f"  mean {_ms(total / count)} (sum / count)",
    ]
    if ok_count and ok_count != count:
        ok_p99 = cp.histogram_quantile(0.99, ok_buckets)
        lines.append(f"  answered calls only (rejected=false, {int(ok_count)} calls): p99 {_ms(ok_p99)}, "
                     f"mean {_ms(ok_total / ok_count)}")
    lines.append("  buckets (le: cumulative count): "
                 + ", ".join(f"{'+Inf' if math.isinf(le) else le}: {int(c)}" for le, c in buckets))
    report = "\n".join(lines)
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    (BUILD_DIR / "e2e-webhook-latency.txt").write_text(report + "\n")
    with capsys.disabled():
        print("\n" + report)
    # Loopback and small pods: far below the webhook's timeout.
    assert p99 < 1.0, report
