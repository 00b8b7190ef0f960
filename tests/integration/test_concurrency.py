"""400 concurrent AdmissionReviews, over keep-alive and fresh connections,
each answered correctly with its own uid."""
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import model
from conftest import apply_response, check_envelope, fresh, load_fixture, policy

MIX = ["spark35-driver.json", "spark35-executor.json", "spark35-pyspark-driver.json", "nginx-pod.json",
       "rogue-pod.json", "spark24-executor.json", "spark35-driver-mutated.json", "configmap-create.json"]
KEEPALIVE_CONNS, PER_CONN = 20, 10        # 200 requests on 20 connections
SINGLE_SHOT, SINGLE_WORKERS = 200, 40     # 200 requests, one connection each


def test_400_concurrent_reviews(server):
    pol = policy()
    base = {name: load_fixture(name) for name in MIX}
    expected = {name: model.expect(base[name], pol) for name in MIX}
    jobs = []
    for i in range(KEEPALIVE_CONNS * PER_CONN + SINGLE_SHOT):
        name = MIX[i % len(MIX)]
        jobs.append((name, fresh(base[name])))
    keep, single = jobs[:KEEPALIVE_CONNS * PER_CONN], jobs[KEEPALIVE_CONNS * PER_CONN:]
    uids = [rv["request"]["uid"] for _, rv in jobs]
    assert len(set(uids)) == len(uids)

    c = server.client()
    start = threading.Barrier(KEEPALIVE_CONNS + SINGLE_WORKERS)
    results = {}
    errors = []

    def check(name, rv, status, headers, data):
        out = check_envelope(rv, status, headers, data)
        r = out["response"]
        exp = expected[name]
        assert r["allowed"] is exp.allowed, (name, r)
        assert ("patch" in r) is exp.changed, (name, r)
        if exp.changed:
            got = apply_response(rv["request"]["object"], r)
            assert got["metadata"]["labels"]["aadpodidbinding"] == exp.pod["metadata"]["labels"]["aadpodidbinding"]
        results[rv["request"]["uid"]] = r["uid"]

    def keepalive_worker(batch):
        start.wait()
        conn = c.connection(timeout=30)
        try:
            for name, rv in batch:
                conn.request("POST", "/mutate?timeout=10s", body=json.dumps(rv).encode(),
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                check(name, rv, resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        except Exception as e:  # noqa: BLE001
            errors.append(f"keep-alive: {e!r}")
        finally:
            conn.close()

    def single_worker(batch):
        start.wait()
        for name, rv in batch:
            try:
                st, hdrs, data = c.request("POST", "/mutate?timeout=10s", json.dumps(rv).encode(),
                                           {"Content-Type": "application/json", "Connection": "close"}, timeout=30)
                check(name, rv, st, hdrs, data)
            except Exception as e:  # noqa: BLE001
                errors.append(f"single: {e!r}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(KEEPALIVE_CONNS + SINGLE_WORKERS) as pool:
        futs = [pool.submit(keepalive_worker, keep[i::KEEPALIVE_CONNS]) for i in range(KEEPALIVE_CONNS)]
        futs += [pool.submit(single_worker, single[i::SINGLE_WORKERS]) for i in range(SINGLE_WORKERS)]
        for f in futs:
            f.result()
    elapsed = time.monotonic() - t0

    assert not errors, f"{len(errors)} failures, first: {errors[:3]}"
    assert len(results) == len(jobs)
    assert all(k == v for k, v in results.items())
    assert elapsed < 30, f"400 reviews took {elapsed:.1f}s"
    st, _, _ = c.request("GET", "/healthz")
    assert st == 200
