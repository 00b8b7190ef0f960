"""Callers cannot drive the webhook's reads of the API. Reviews naming
namespaces the cache does not hold come straight to the webhook (as any pod
in the cluster could send them), 10,000 at full speed, most with names no
namespace has and some with names no namespace can have. The real API
server's audit log counts the GETs of namespaces that the webhook's
ServiceAccount made meanwhile: at most what the per-second cap allows, never
one for an impossible name, and reviews for a known namespace keep a short
tail throughout."""
from __future__ import annotations

import copy
import http.client
import json
import secrets
import ssl
import threading
import time

from harness import FIXTURES, cp

REVIEWS = 10_000
THREADS = 4
CAP_PER_SECOND = 10          # WH_NS_FETCH_PER_SECOND
BURST = 10                   # the bucket starts full
KNOWN_NS = "team-b"          # an entry by name: no read at all
KNOWN_BY_LABEL = "team-x"    # made by conftest, read from the cache


def _review(ns: str) -> bytes:
    rv = json.loads((FIXTURES / "spark35-driver.json").read_text())
    rv = copy.deepcopy(rv)
    rv["request"]["uid"] = secrets.token_hex(8)
    rv["request"]["namespace"] = ns
    rv["request"]["object"]["metadata"]["namespace"] = ns
    return json.dumps(rv).encode()


class _Client:
    def __init__(self, webhook: cp.Webhook):
        ctx = ssl.create_default_context(cafile=str(webhook.certs / "ca.crt"))
        self.conn = http.client.HTTPSConnection("127.0.0.1", webhook.port, context=ctx, timeout=10)

    def post(self, body: bytes) -> tuple[int, float]:
        t0 = time.monotonic()
        self.conn.request("POST", "/mutate?timeout=5s", body, {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        r.read()
        return r.status, time.monotonic() - t0


def _gets(cluster: cp.ControlPlane) -> list[dict]:
    out = []
    for e in cluster.audit_events():
        ref = e.get("objectRef") or {}
        if (e.get("verb") == "get" and ref.get("resource") == "namespaces" and
                (e.get("user") or {}).get("username") == cp.WEBHOOK_SA_USER and e.get("stage") == "ResponseComplete"):
            out.append(e)
    return out


def _names(i: int) -> str:
    if i % 10 == 0:
        return "Not_A_Namespace-" + secrets.token_hex(4)      # uppercase and '_': cannot exist
    if i % 10 == 1:
        return "x" * 70                                        # longer than a label
    return "rnd-" + secrets.token_hex(6)


def test_random_namespaces_cannot_drive_api_reads(webhook, cluster, registration):
    before = len(_gets(cluster))
    # The known namespaces' tail before the flood.
    c = _Client(webhook)
    base = sorted(c.post(_review(KNOWN_BY_LABEL))[1] for _ in range(200))

    statuses: dict[int, int] = {}
    lock = threading.Lock()
    known_lat: list[float] = []
    stop = threading.Event()

    def flood(k: int) -> None:
        cl = _Client(webhook)
        for i in range(k, REVIEWS, THREADS):
            st, _ = cl.post(_review(_names(i)))
            with lock:
                statuses[st] = statuses.get(st, 0) + 1

    def known() -> None:
        cl = _Client(webhook)
        while not stop.is_set():
            for ns in (KNOWN_NS, KNOWN_BY_LABEL):
                st, dt = cl.post(_review(ns))
                assert st == 200
                known_lat.append(dt)
            time.sleep(0.01)

    t0 = time.monotonic()
    workers = [threading.Thread(target=flood, args=(k,)) for k in range(THREADS)]
    kt = threading.Thread(target=known)
    for w in workers:
        w.start()
    kt.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - t0
    stop.set()
    kt.join()
    time.sleep(1)   # the audit log is written as requests complete

    gets = _gets(cluster)[before:]
    allowed = BURST + CAP_PER_SECOND * (elapsed + 1)
    print(f"{REVIEWS} reviews in {elapsed:.1f} s: {len(gets)} GETs of namespaces (cap {allowed:.0f}); "
          f"statuses {statuses}")
    assert statuses.get(200, 0) == REVIEWS, statuses
    assert 0 < len(gets) <= allowed, (len(gets), allowed)
    asked = {(e.get("objectRef") or {}).get("name") for e in gets}
    assert not any(n is None or n.startswith("Not_A_Namespace") or n == "x" * 70 for n in asked), asked
    assert KNOWN_NS not in asked and KNOWN_BY_LABEL not in asked

    base_p99 = base[int(0.99 * len(base))]
    during = sorted(known_lat)
    p99 = during[int(0.99 * len(during))]
    print(f"known namespaces: p99 {p99 * 1000:.1f} ms during the flood, {base_p99 * 1000:.1f} ms before "
          f"({len(during)} reviews)")
    assert p99 < max(0.1, 3 * base_p99), (p99, base_p99)


def test_refused_reads_follow_on_lookup_failure_and_say_why(webhook):
    """Past the cap, the review is answered at once, by onLookupFailure
    (deny in the e2e policy), naming the cap."""
    cl = _Client(webhook)
    refused = None
    for i in range(200):
        cl.conn.request("POST", "/mutate?timeout=5s", _review("cap-" + secrets.token_hex(6)),
                        {"Content-Type": "application/json"})
        r = json.loads(cl.conn.getresponse().read())["response"]
        if not r["allowed"] and "capped" in r["status"]["message"]:
            refused = r
            break
    assert refused, "200 unknown namespaces at once never met the cap"
    assert "onLookupFailure: deny" in refused["status"]["message"]
