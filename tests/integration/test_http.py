"""The HTTP surface: health endpoints, error answers, body limits, keep-alive,
slow clients. After every bad request the server must go on serving."""
import json
import select
import socket
import time

import pytest

from conftest import (MUTATE, SMALL_MAX_BODY, check_envelope, fresh, load_fixture, read_http_response,
                      status_error)


def assert_still_serving(server):
    c = server.client()
    st, _, body = c.request("GET", "/healthz")
    assert st == 200, body
    rv = fresh(load_fixture("spark35-driver.json"))
    out = c.review(rv)
    assert out["response"]["allowed"] is True and "patch" in out["response"]


def test_healthz_and_readyz_answer_json(client):
    for path in ("/healthz", "/readyz"):
        st, hdrs, body = client.request("GET", path)
        assert st == 200, (path, body)
        assert hdrs.get("content-type", "").startswith("application/json"), (path, hdrs)
        assert isinstance(json.loads(body), dict), body


def test_mutate_accepts_the_api_servers_timeout_parameter_and_none(client):
    rv = fresh(load_fixture("spark35-driver.json"))
    for path in ("/mutate?timeout=10s", "/mutate?timeout=30s", "/mutate"):
        out = client.review(fresh(rv), path)
        assert out["response"]["allowed"] is True and "patch" in out["response"], path


def test_content_type_with_charset_is_accepted(client):
    rv = fresh(load_fixture("spark35-driver.json"))
    st, hdrs, body = client.post_raw(json.dumps(rv).encode(), content_type="application/json; charset=utf-8")
    check_envelope(rv, st, hdrs, body)


def test_response_is_compact_enough_and_not_the_whole_pod(client):
    rv = fresh(load_fixture("spark35-executor.json"))
    st, _, body = client.post_raw(json.dumps(rv).encode())
    assert st == 200
    # The answer carries a patch, not a re-serialized pod.
    assert b"kube-api-access" not in body and b"managedFields" not in body, body[:300]


BAD_BODIES = {
    "not-json": b"this is not json",
    "truncated-json": json.dumps(load_fixture("spark35-driver.json")).encode()[:700],
    "empty-body": b"",
    "json-array": b"[]",
    "json-string": b'"AdmissionReview"',
    "empty-object": b"{}",
    "wrong-kind": json.dumps({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "x"}}).encode(),
    "wrong-apiversion": json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v2",
                                    "request": load_fixture("spark35-driver.json")["request"]}).encode(),
    "no-request": json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}).encode(),
    "request-null": json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": None}).encode(),
    "no-uid": json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
                          "request": {k: v for k, v in load_fixture("spark35-driver.json")["request"].items() if k != "uid"}}).encode(),
    "empty-uid": json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
                             "request": dict(load_fixture("spark35-driver.json")["request"], uid="")}).encode(),
    "uid-not-string": json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
                                  "request": dict(load_fixture("spark35-driver.json")["request"], uid=42)}).encode(),
    "nul-byte": b'{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"\x00}',
    "deep-nesting": b"[" * 100000 + b"]" * 100000,
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_review_is_400_and_server_goes_on(server, case):
    st, hdrs, body = server.client().post_raw(BAD_BODIES[case])
    # 100,000 nested arrays would take 100,000 nodes to parse: past the parse
    # budget of a 200 KB body, refused by its shape before any is made.
    status_error(st, hdrs, body, 413 if case == "deep-nesting" else 400)
    assert_still_serving(server)


@pytest.mark.parametrize("method,path", [("GET", "/nope"), ("POST", "/nope"), ("GET", "/mutate/extra"),
                                         ("POST", "/validate/extra"), ("POST", "/validating"), ("GET", "/")])
def test_unknown_path_is_404(server, method, path):
    body = json.dumps(load_fixture("spark35-driver.json")).encode() if method == "POST" else None
    headers = {"Content-Type": "application/json"} if body else {}
    st, hdrs, data = server.client().request(method, path, body, headers)
    status_error(st, hdrs, data, 404)
    assert_still_serving(server)


@pytest.mark.parametrize("method,path", [("GET", "/mutate"), ("PUT", "/mutate"), ("DELETE", "/mutate"),
                                         ("GET", "/validate"), ("PUT", "/validate"),
                                         ("POST", "/healthz"), ("POST", "/readyz")])
def test_wrong_method_is_405(server, method, path):
    body = json.dumps(load_fixture("spark35-driver.json")).encode() if method in ("PUT", "POST") else None
    headers = {"Content-Type": "application/json"} if body else {}
    st, hdrs, data = server.client().request(method, path, body, headers)
    status_error(st, hdrs, data, 405)
    assert_still_serving(server)


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded", "application/yaml",
                                   "application/jsonx"])
def test_wrong_or_missing_content_type_is_415(server, ctype):
    body = json.dumps(fresh(load_fixture("spark35-driver.json"))).encode()
    st, hdrs, data = server.client().post_raw(body, content_type=ctype)
    status_error(st, hdrs, data, 415)
    assert_still_serving(server)


@pytest.mark.parametrize("ctype", ["application/json x", "application/json;",
                                   "application/json; charset", "application/json; charset=\"utf-8",
                                   "application/json;;", "application/json\x01"])
def test_content_type_with_trailing_garbage_is_415(server, ctype):
    body = json.dumps(fresh(load_fixture("spark35-driver.json"))).encode()
    with server.client().tls_socket() as s:
        s.sendall(f"POST {MUTATE} HTTP/1.1\r\nHost: {server.client().sni}\r\n".encode()
                  + b"Content-Type: " + ctype.encode("latin-1") + b"\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        st, hdrs, data = read_http_response(s)
    status_error(st, hdrs, data, 415)
    assert_still_serving(server)


# A NUL anywhere in a header line is refused by libmicrohttpd (1.0) itself,
# before the application sees the request: a 400, never an admission.
@pytest.mark.parametrize("where", ["content-type", "content-type-last", "other-header"])
def test_nul_in_a_header_is_refused(server, where):
    body = json.dumps(fresh(load_fixture("spark35-driver.json"))).encode()
    ct = b"Content-Type: application/json" + (b"\x00x" if where.startswith("content-type") else b"") + b"\r\n"
    cl = f"Content-Length: {len(body)}\r\n".encode()
    other = b"X-Trace: a\x00b\r\n" if where == "other-header" else b""
    head = f"POST {MUTATE} HTTP/1.1\r\nHost: {server.client().sni}\r\n".encode() + other
    head += (cl + ct) if where == "content-type-last" else (ct + cl)
    with server.client().tls_socket() as s:
        s.sendall(head + b"\r\n" + body)
        st, hdrs, data = read_http_response(s)
    assert st == 400, (st, data)
    assert b"patch" not in data
    assert_still_serving(server)


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "application/json ;charset=\"utf-8\"",
                                   "Application/JSON"])
def test_content_type_with_well_formed_parameters_is_accepted(client, ctype):
    rv = fresh(load_fixture("spark35-driver.json"))
    st, hdrs, data = client.post_raw(json.dumps(rv).encode(), content_type=ctype)
    assert st == 200, data


@pytest.mark.parametrize("framing", [
    "Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n",
    "Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n",
    "Content-Length: {n}\r\nContent-Length: {m}\r\n",
])
def test_a_body_framed_two_ways_is_400(server, framing):
    """Request smuggling shapes: refused before the body is read."""
    body = json.dumps(fresh(load_fixture("spark35-driver.json"))).encode()
    head = (f"POST {MUTATE} HTTP/1.1\r\nHost: {server.client().sni}\r\nContent-Type: application/json\r\n"
            + framing.format(n=len(body), m=len(body) + 1) + "\r\n").encode()
    with server.client().tls_socket() as s:
        s.sendall(head)
        st, hdrs, data = read_http_response(s)
    assert st == 400, (st, data)
    assert_still_serving(server)


def test_two_equal_content_lengths_are_one(client):
    rv = fresh(load_fixture("spark35-driver.json"))
    body = json.dumps(rv).encode()
    with client.tls_socket() as s:
        s.sendall((f"POST {MUTATE} HTTP/1.1\r\nHost: {client.sni}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
        st, hdrs, data = read_http_response(s)
    check_envelope(rv, st, hdrs, data)


def test_large_review_under_the_default_limit_is_answered(client):
    rv = fresh(load_fixture("spark35-driver.json"))
    rv["request"]["object"]["metadata"]["annotations"] = {"example.com/blob": "x" * (1 << 20)}
    out = client.review(rv)
    assert out["response"]["allowed"] is True and "patch" in out["response"]


def test_chunked_review_is_answered(server):
    rv = fresh(load_fixture("spark35-driver.json"))
    body = json.dumps(rv).encode()
    with server.client().tls_socket() as s:
        s.sendall(f"POST {MUTATE} HTTP/1.1\r\nHost: {server.client().sni}\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n".encode())
        for i in range(0, len(body), 1000):
            part = body[i:i + 1000]
            s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        s.sendall(b"0\r\n\r\n")
        st, hdrs, data = read_http_response(s)
    check_envelope(rv, st, hdrs, data)


# --- 413 on a server started with --max-body 65536 -----------------------

def _head(server, extra):
    return (f"POST {MUTATE} HTTP/1.1\r\nHost: {server.client().sni}\r\nContent-Type: application/json\r\n"
            + extra + "\r\n").encode()


def _send_until_answered(sock, chunks):
    """Sends chunks until the server has something to say (or all are sent),
    from this one thread: an SSL socket must not be written and read at once."""
    for c in chunks:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable or sock.pending():
            return
        try:
            sock.sendall(c)
        except OSError:
            return      # the server answered and closed: read the answer


def test_small_limit_still_takes_a_review_just_under_it(small_server):
    rv = fresh(load_fixture("spark35-driver.json"))
    size = len(json.dumps(rv))
    rv["request"]["object"]["metadata"]["annotations"] = {"example.com/pad": "x" * (SMALL_MAX_BODY - size - 200)}
    body = json.dumps(rv).encode()
    assert SMALL_MAX_BODY - 300 < len(body) <= SMALL_MAX_BODY
    st, hdrs, data = small_server.client().post_raw(body)
    check_envelope(rv, st, hdrs, data)


def test_413_from_content_length_alone_without_reading_the_body(small_server):
    with small_server.client().tls_socket() as s:
        s.sendall(_head(small_server, f"Content-Length: {8 * SMALL_MAX_BODY}\r\n"))
        t0 = time.monotonic()
        st, hdrs, data = read_http_response(s, timeout=5)   # no body byte was sent
        assert time.monotonic() - t0 < 5
    status_error(st, hdrs, data, 413)
    assert_still_serving(small_server)


def test_413_with_content_length_and_the_body_sent(small_server):
    rv = load_fixture("spark35-driver.json")
    rv["request"]["object"]["metadata"]["annotations"] = {"example.com/pad": "x" * SMALL_MAX_BODY}
    body = json.dumps(rv).encode()
    assert len(body) > SMALL_MAX_BODY
    with small_server.client().tls_socket() as s:
        s.sendall(_head(small_server, f"Content-Length: {len(body)}\r\n"))
        _send_until_answered(s, [body[i:i + 8192] for i in range(0, len(body), 8192)])
        st, hdrs, data = read_http_response(s, timeout=10)
    status_error(st, hdrs, data, 413)
    assert_still_serving(small_server)


def test_413_when_chunked(small_server):
    with small_server.client().tls_socket() as s:
        s.sendall(_head(small_server, "Transfer-Encoding: chunked\r\n"))
        piece = b"x" * 8192
        chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * (4 * SMALL_MAX_BODY // 8192) + [b"0\r\n\r\n"]
        _send_until_answered(s, chunks)
        st, hdrs, data = read_http_response(s, timeout=10)
    status_error(st, hdrs, data, 413)
    assert_still_serving(small_server)


# --- connections ----------------------------------------------------------

def test_keep_alive_serves_many_requests_on_one_connection(server):
    c = server.client()
    conn = c.connection()
    try:
        conn.connect()
        sock = conn.sock
        for _ in range(5):
            rv = fresh(load_fixture("spark35-executor.json"))
            conn.request("POST", MUTATE, body=json.dumps(rv).encode(), headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            check_envelope(rv, resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
            assert (resp.getheader("Connection") or "").lower() != "close"
            assert conn.sock is sock, "the server closed a keep-alive connection"
    finally:
        conn.close()


def test_slow_clients_do_not_block_others(server):
    c = server.client()
    stalled = []
    try:
        for _ in range(6):   # TCP only: never starts the TLS handshake
            stalled.append(socket.create_connection(("127.0.0.1", server.port)))
        for _ in range(6):   # TLS done, half a request head, then nothing
            s = c.tls_socket()
            s.sendall(f"POST {MUTATE} HTTP/1.1\r\nHost: {c.sni}\r\nContent-Type: appl".encode())
            stalled.append(s)
        for _ in range(6):   # full head, a third of the body, then nothing
            s = c.tls_socket()
            body = json.dumps(fresh(load_fixture("spark35-driver.json"))).encode()
            s.sendall(_head(server, f"Content-Length: {len(body)}\r\n") + body[: len(body) // 3])
            stalled.append(s)
        time.sleep(0.2)
        for _ in range(10):
            t0 = time.monotonic()
            rv = fresh(load_fixture("spark35-driver.json"))
            out = c.review(rv)
            assert out["response"]["allowed"] is True
            assert time.monotonic() - t0 < 2, "a request waited behind stalled connections"
    finally:
        for s in stalled:
            s.close()
    assert_still_serving(server)


def test_every_log_line_is_json_and_a_decision_names_the_pod(server):
    rv = fresh(load_fixture("spark35-driver.json"))
    name = "log-probe-" + rv["request"]["uid"][:8] + "-driver"
    rv["request"]["name"] = name
    rv["request"]["object"]["metadata"]["name"] = name
    server.client().review(rv)
    deadline = time.monotonic() + 3
    while True:
        lines = [ln for ln in server.stderr_path.read_text(errors="replace").splitlines() if ln.strip()]
        hits = [ln for ln in lines if name in ln]
        if hits or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    bad = [ln for ln in lines if not _is_json_object(ln)]
    assert not bad, f"stderr lines that are not JSON objects: {bad[:3]}"
    assert hits, "no log line names the pod of the decision"
    rec = json.loads(hits[-1])
    assert "team-a" in json.dumps(rec) and "sparkaks" in json.dumps(rec), rec


def _is_json_object(line):
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
