"""The memory and slow-client attacks of tests/attack run against the
webhook server the real API server calls, and meanwhile Spark drivers are
created through the API server: each is admitted and mutated, every time,
within the webhook's timeout. Loopback only; bounded in time."""
from __future__ import annotations

import importlib.util
import multiprocessing as mp
import time

from harness import ROOT, create_pod, fixture_object, get_pod, model, unique

SECONDS = 20
NS = "team-a"


def _attack_module():
    spec = importlib.util.spec_from_file_location("attack", ROOT / "tests" / "attack" / "attack.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_spark_drivers_are_admitted_while_the_webhook_is_attacked(kubectl, cluster, webhook, policy):
    attack = _attack_module()
    ca = str(webhook.certs / "ca.crt")
    until = time.monotonic() + SECONDS
    procs = [
        mp.Process(target=attack.big_bodies, args=(webhook.port, ca, until, [3 << 20])),
        mp.Process(target=attack.held_bodies, args=(webhook.port, ca, until, 100, 7 << 20)),
        mp.Process(target=attack.slow_clients, args=(webhook.port, ca, until, "127.0.0.2", 256, 256)),
        mp.Process(target=attack.slow_clients, args=(webhook.port, ca, until, "127.0.0.3", 256, 256)),
    ]
    for p in procs:
        p.start()
    created, slowest = 0, 0.0
    try:
        time.sleep(3)   # the attack in place
        while time.monotonic() < until - 1:
            pod = unique(fixture_object("spark35-driver.json"), f"attacked-{created}")
            t0 = time.monotonic()
            create_pod(cluster, pod, NS)
            slowest = max(slowest, time.monotonic() - t0)
            stored = get_pod(cluster, NS, pod["metadata"]["name"])
            assert stored["metadata"]["labels"][model.IDENTITY_LABEL] == "sparkaks"
            created += 1
    finally:
        for p in procs:
            p.join(SECONDS + 15)
            if p.is_alive():
                p.kill()
    print(f"{created} drivers created under attack; slowest kubectl create {slowest:.2f} s")
    assert created >= 5, created
    st, body = webhook.readyz()
    assert st == 200, body
