"""Writes the fuzz targets' seed corpora, tests/fuzz/corpus/TARGET/, from the
test fixtures (AdmissionReviews, policies) and a few hand-made cases, so
that every seed says where it comes from and can be made again:

    python3 tests/fuzz/make_corpus.py        # then commit tests/fuzz/corpus

Inputs libFuzzer finds go to BUILD/fuzz/corpus/TARGET, not here. Needs
PyYAML (for the JSON renderings of the policies)."""
import glob
import json
import os
import shutil

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
CORPUS = os.path.join(HERE, "corpus")

GUID = "5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c"


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def review_in(name, namespace):
    r = json.loads(fixture(name))
    r["request"]["namespace"] = namespace
    if isinstance(r["request"].get("object"), dict):
        r["request"]["object"].setdefault("metadata", {})["namespace"] = namespace
    return compact(r)


def review_corpus():
    out = {}
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*.json"))):
        out["fixture-" + os.path.basename(path)] = fixture(os.path.basename(path))
    # tests/fixtures/policy.yaml: one namespace per kind of rule
    for ns in ("team-b", "team-c", "team-d", "team-e", "team-f", "team-off", "team-x"):
        out[f"driver-{ns}.json"] = review_in("spark35-driver.json", ns)
    for ns in ("team-d", "team-e"):
        out[f"executor-{ns}.json"] = review_in("spark35-executor.json", ns)
    out["foreign-identity-team-f.json"] = review_in("spark35-driver-foreign-identity.json", "team-f")
    # tests/fuzz/policy-namespaces.yaml: workload identity
    for ns in ("team-w", "team-wd"):
        out[f"driver-{ns}.json"] = review_in("spark35-driver.json", ns)
        out[f"executor-{ns}.json"] = review_in("spark35-executor.json", ns)
        out[f"mutated-driver-{ns}.json"] = review_in("spark35-driver-mutated.json", ns)
        out[f"azure-wi-driver-{ns}.json"] = review_in("spark40-driver-azure-wi.json", ns)
        out[f"sidecar-driver-{ns}.json"] = review_in("spark40-driver-template-sidecar.json", ns)
        out[f"default-sa-executor-{ns}.json"] = review_in("spark40-executor-default-sa.json", ns)
    # tests/fuzz/policy-namespaces.yaml: labels and annotations from the name
    namespaces = {
        "selector-data": "spark-identity.io/team=data,env=prod,tier=gold",
        "selector-audit": "audit=yes",
        "annotations": f"a:identity=x-spark,a:client-id={GUID},a:mode=enforce",
        "annotations-wi": f"a:auth=workloadIdentity,a:client-id={GUID},a:service-account=spark",
        "selector-wi": "auth=wi",
        "annotations-bad": "a:identity=not a label!,a:client-id=nope",
        "gone": "gone-team",
        "unreadable": "err-team",
    }
    for label, ns in namespaces.items():
        out[f"driver-ns-{label}.json"] = review_in("spark35-driver.json", ns)
    out["executor-ns-selector-data.json"] = review_in("spark35-executor.json", namespaces["selector-data"])
    out["rogue-ns-annotations.json"] = review_in("rogue-pod.json", namespaces["annotations"])
    # Issue 11: claims added or changed on UPDATE (also pods/status), and
    # namespace changes of grant keys.
    for ns in ("team-b", "team-c", "team-off", namespaces["annotations"]):
        r = json.loads(review_in("rogue-pod.json", ns))
        req = r["request"]
        req["operation"] = "UPDATE"
        old = json.loads(json.dumps(req["object"]))
        old["metadata"]["labels"].pop("aadpodidbinding", None)
        req["oldObject"] = old
        out[f"update-claim-{ns.split(',')[0].replace(':', '-').replace('=', '-')}.json"] = compact(r)
        req["subResource"] = "status"
        out[f"status-claim-{ns.split(',')[0].replace(':', '-').replace('=', '-')}.json"] = compact(r)
    for op, user, group in (("CREATE", "tenant", "tenants"), ("UPDATE", "admin", "system:masters")):
        meta = {"name": "team-n", "labels": {"spark-identity.io/team": "data", "env": "prod"},
                "annotations": {"spark-identity.io/identity": "x-spark"}}
        req = {"uid": "0f6a2b1c-6e1d-4c59-9a0e-2f7b3c4d5e6f", "kind": {"group": "", "version": "v1", "kind": "Namespace"},
               "resource": {"group": "", "version": "v1", "resource": "namespaces"}, "name": "team-n",
               "operation": op, "userInfo": {"username": user, "groups": [group, "system:authenticated"]},
               "object": {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}}
        if op == "UPDATE":
            req["oldObject"] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-n"}}
        out[f"namespace-{op.lower()}.json"] = compact({"apiVersion": "admission.k8s.io/v1",
                                                        "kind": "AdmissionReview", "request": req})
    out["not-json.txt"] = b'{"kind":"AdmissionReview",'
    out["not-a-review.json"] = b'{"kind":"Pod","apiVersion":"v1"}'
    out["no-uid.json"] = b'{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{}}'
    return out


def policy_corpus():
    out = {}
    sources = sorted(glob.glob(os.path.join(FIXTURES, "*.yaml"))) + [
        os.path.join(ROOT, "deploy", "base", "policy.yaml"),
        os.path.join(HERE, "policy-namespaces.yaml"),
    ]
    for path in sources:
        name = os.path.relpath(path, ROOT).replace("/", "_")
        with open(path, "rb") as f:
            text = f.read()
        out[name] = text
        out[name.replace(".yaml", ".json")] = compact(yaml.safe_load(text))
    out["anchors.yaml"] = b"""defaults: &d
  java: {options: [-Da=b]}
namespaces:
  team-a: {identity: a-spark, java: {options: [-Da=b]}}
  team-b: &b {identity: b-spark, clientId: 5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c}
  team-c: *b
"""
    out["flow.yaml"] = (b"{namespaces: {team-a: {identity: sparkaks, storageAccounts: [lakeprod],"
                        b" hadoop: {fs.azure.x: '1', a.b: null, c: 2.5, d: true}}}, unmatched: deny}\n")
    out["selector-only.yaml"] = (b"selectors:\n  - namespaceSelector: {}\n    identity: everyone\n"
                                 b"onLookupFailure: allow\n")
    out["errors.yaml"] = (b"defaults: {identity: x, mode: sometimes}\nnamespaces:\n  Team_A: {clientID: 1}\n"
                          b"  team-b: {identity: 'two words', tenantId: not-a-guid}\n")
    out["duplicate-key.yaml"] = b"namespaces: {}\nnamespaces: {}\n"
    out["laughs.yaml"] = (b"a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
                          b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n")
    out["deep.yaml"] = b"defaults: " + b"[" * 40 + b"]" * 40 + b"\n"
    out["two-docs.yaml"] = b"--- {}\n--- {}\n"
    out["empty.yaml"] = b""
    return out


def patch_program(*fields):
    """fuzz_jsonpatch's input: fields of command byte + string, NUL-separated."""
    return b"\0".join(bytes([cmd]) + s.encode() for cmd, s in fields)


TOKEN, INDEX, OP, RESET, TOKENS = 0, 1, 2, 3, 4
ADD, REPLACE, TEST, REMOVE, OWN = (OP + 5 * k for k in range(5))


def jsonpatch_corpus():
    return {
        "env-append": patch_program((TOKEN, "spec"), (TOKEN, "containers"), (INDEX, "0"), (TOKEN, "env"),
                                    (TOKEN, "-"), (ADD, '{"name":"JAVA_HOME","value":"/opt/java/openjdk"}')),
        "label": patch_program((TOKEN, "metadata"), (TOKEN, "labels"), (TOKEN, "aadpodidbinding"),
                               (REPLACE, "sparkaks"), (RESET, ""), (TOKEN, "metadata"), (REMOVE, "")),
        "escapes": patch_program((TOKEN, "a/b"), (TOKEN, "m~n"), (TOKEN, "~01/~10"), (TOKEN, ""),
                                 (TOKEN, "spark-identity.io/team"), (TEST, 'quote " backslash \\ tab \t'),
                                 (TOKENS, "")),
        "control": patch_program((TOKEN, "\x01\x1f\x7f"), (ADD, "\n\r\b\f"), (OWN, "weird op"),
                                 (INDEX, "18446744073709551615"), (INDEX, "abc"), (TOKENS, "")),
        "unicode": patch_program((TOKEN, "h\u00e9llo \u2028 \U0001f600"), (ADD, "\u00b5s \ufeff"), (TOKENS, "")),
    }


def http_request(method, target, body=None, headers=(), version="HTTP/1.1"):
    head = [f"{method} {target} {version}", "Host: 127.0.0.1"]
    head += list(headers)
    if body is not None:
        head.append("Content-Length: *")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


def http_corpus():
    review = b'{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u"}}'
    json_ct = "Content-Type: application/json"
    return {
        "get-healthz": http_request("GET", "/healthz"),
        "head-readyz": http_request("HEAD", "/readyz"),
        "get-metrics": http_request("GET", "/metrics", version="HTTP/1.0"),
        "post-healthz": http_request("POST", "/healthz", b"{}", [json_ct]),
        "get-unknown": http_request("GET", "/nope?x=%2F&y"),
        "post-mutate": http_request("POST", "/mutate?timeout=10s", review, [json_ct]),
        "chunked": b"POST /mutate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + json_ct.encode()
                   + b"\r\n\r\n4\r\n{}  \r\n0\r\n\r\n",
        "pipelined": http_request("GET", "/healthz", headers=["Connection: keep-alive"]) * 3,
        "expect-continue": http_request("POST", "/mutate", review, [json_ct, "Expect: 100-continue"]),
        "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n",
    }


def https_corpus():
    json_ct = "Content-Type: application/json"
    out = {}
    for name in ("spark35-driver.json", "spark35-executor.json", "nginx-pod.json", "rogue-pod.json"):
        out["mutate-" + name.replace(".json", "")] = http_request(
            "POST", "/mutate?timeout=10s", fixture(name), [json_ct])
    driver = fixture("spark35-driver.json")
    out["mutate-keepalive-twice"] = (
        http_request("POST", "/mutate", b'{"kind":"AdmissionReview"}', [json_ct, "Connection: keep-alive"])
        + http_request("GET", "/readyz"))
    out["mutate-not-json"] = http_request("POST", "/mutate?timeout=1m30s", b"{not json", [json_ct])
    out["mutate-text-plain"] = http_request("POST", "/mutate", b"{}", ["Content-Type: text/plain"])
    out["mutate-charset"] = http_request("POST", "/mutate?timeout=500ms", b"{}",
                                         ["Content-Type: Application/JSON ; charset=utf-8"])
    out["mutate-too-large-declared"] = (b"POST /mutate HTTP/1.1\r\nHost: x\r\n" + json_ct.encode()
                                        + b"\r\nContent-Length: 99999999\r\n\r\n{}")
    out["mutate-too-large-chunked"] = (b"POST /mutate HTTP/1.1\r\nHost: x\r\n" + json_ct.encode()
                                       + b"\r\nTransfer-Encoding: chunked\r\n\r\n4400\r\n" + b" " * 0x4400
                                       + b"\r\n0\r\n\r\n")
    out["mutate-bad-timeout"] = http_request("POST", "/mutate?timeout=soon", driver[:200], [json_ct])
    out["mutate-get"] = http_request("GET", "/mutate")
    out["healthz"] = http_request("GET", "/healthz")
    out["metrics"] = http_request("GET", "/metrics")
    return out


def write(target, files):
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return sum(len(v) for v in files.values())


def main():
    total = 0
    for target, make in (("review", review_corpus), ("policy", policy_corpus),
                         ("jsonpatch", jsonpatch_corpus), ("http", http_corpus), ("https", https_corpus)):
        n = write(target, make())
        total += n
        print(f"corpus/{target}: {len(os.listdir(os.path.join(CORPUS, target)))} seeds, {n // 1024} KiB")
    print(f"total {total // 1024} KiB")


if __name__ == "__main__":
    main()
