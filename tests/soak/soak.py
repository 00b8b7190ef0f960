#!/usr/bin/env python3
"""The soak of issue 6 ("Soak and faults"); tests/soak/run.sh builds the
binary and calls this.

The server runs under h2load --h1 (keep-alive TLS, the Spark driver review as
the API server sends it) at half of the saturated rate measured at the start,
for SECONDS, while:

  - the policy file is rewritten every --policy-every seconds, atomically
    (a new file renamed over it), alternating two valid policies that give
    namespace team-a different identities; every fifth rewrite is an invalid
    policy, which the server must refuse while the old one keeps serving;
  - the serving pair is renewed (`certs --renew`: same CA, new key) every
    --cert-every seconds and published the way the kubelet updates a Secret
    volume (a new ..data directory, one rename);
  - the decision log (--audit-log) is rotated the way logrotate does it
    (renamed away, the old one deleted) every --log-every seconds;
  - a client opens a new verified TLS connection (CA, SNI) every
    --probe-every seconds and sends the driver review.

h2load runs in slices of --slice seconds, so that its connections are made
again and new handshakes meet the rotated certificates too.

Checks, each a JUnit test case in --junit and a line on stdout:
  requests      no h2load request failed, errored or timed out, all were 2xx
  probes        every probe was verified, answered 200 and allowed, with an
                identity of one of the two policies
  policy        every valid rewrite was followed (the /readyz policySha256
                and the identity in the answer) within --follow seconds;
                every invalid one was refused (logged) and the old policy
                kept serving
  certificates  every renewed pair was served to new handshakes within
                --follow seconds
  memory        resident memory (VmRSS, sampled every --sample-every s)
                after the warm-up (the first --warm-up share of the run)
                grows by at most --rss-tolerance-kib between the median of
                the first third and the median of the last third
  shutdown      SIGTERM: exit status 0 within the shutdown grace

With --valgrind the server runs under valgrind's memcheck (at --rate, which
is then required: saturation means nothing there), and the memory check
gives way to one on valgrind's report:
  valgrind      no error, and nothing definitely, indirectly or possibly lost

With --tsan the binary is a ThreadSanitizer build (tests/tsan.sh): its
shadow memory grows with what it has seen, so the memory check gives way to
one on its reports, which the server writes to WORK/tsan.PID:
  tsan          no ThreadSanitizer report from the server

Standard library only; loads go to 127.0.0.1.
"""
import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
SERVICE, NAMESPACE, SNI = "soak", "soak", "localhost"
IDENTITIES = ("soak-a", "soak-b")

H2LOAD_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
H2LOAD_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                             r"(\d+) failed, (\d+) errored, (\d+) timeout")
H2LOAD_CODES = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def say(what):
    print("soak: " + what, file=sys.stderr, flush=True)


def write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def policies():
    """The two valid policies (team-a's identity differs) and an invalid one."""
    with open(os.path.join(FIXTURES, "policy.yaml"), "rb") as f:
        text = f.read()
    assert b"identity: sparkaks\n" in text and b"  mode: enforce\n" in text
    a = text.replace(b"identity: sparkaks\n", b"identity: %s\n" % IDENTITIES[0].encode())
    b = text.replace(b"identity: sparkaks\n", b"identity: %s\n" % IDENTITIES[1].encode())
    bad = a.replace(b"  mode: enforce\n", b"  mode: enforce-everything\n")
    return a, b, bad


class Volume:
    """tls.crt and tls.key as a kubelet Secret volume lays them out: links
    into ..data, itself a link to a versioned directory that an update
    replaces in one rename."""

    def __init__(self, root, source):
        self.root = root
        self.version = 0
        os.makedirs(root)
        self.publish(source)
        os.symlink("..data/tls.crt", os.path.join(root, "tls.crt"))
        os.symlink("..data/tls.key", os.path.join(root, "tls.key"))

    def publish(self, source):
        self.version += 1
        d = os.path.join(self.root, "..v%d" % self.version)
        os.makedirs(d)
        for name in ("tls.crt", "tls.key"):
            shutil.copy(os.path.join(source, name), os.path.join(d, name))
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink(os.path.basename(d), tmp)
        os.replace(tmp, os.path.join(self.root, "..data"))
        old = os.path.join(self.root, "..v%d" % (self.version - 2))
        shutil.rmtree(old, ignore_errors=True)   # the kubelet removes old versions too


def serial_of(cert):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", cert],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().split("=", 1)[1].upper().lstrip("0")


class Client:
    """New verified TLS connections to the server, one request each."""

    def __init__(self, port, ca):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca)

    def request(self, method, path, body=None):
        """(status, body, the served certificate's serial)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.ctx.wrap_socket(raw, server_hostname=SNI) as s:
                serial = s.getpeercert()["serialNumber"].upper().lstrip("0")
                head = "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (method, path, SNI)
                if body is not None:
                    head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
                s.sendall(head.encode() + b"\r\n" + (body or b""))
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        head, _, payload = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, payload, serial

    def readyz(self):
        status, payload, serial = self.request("GET", "/readyz")
        return status, json.loads(payload), serial

    def review(self, body):
        """(status, allowed, the identity the patch gives, serial)."""
        status, payload, serial = self.request("POST", "/mutate?timeout=10s", body)
        if status != 200:
            return status, None, None, serial
        resp = json.loads(payload)["response"]
        identity = None
        if resp.get("patch"):
            for op in json.loads(base64.b64decode(resp["patch"])):
                if op.get("path", "").endswith("aadpodidbinding") or (
                        op.get("path") == "/metadata/labels" and isinstance(op.get("value"), dict)):
                    v = op["value"]
                    identity = v.get("aadpodidbinding") if isinstance(v, dict) else v
        return status, resp.get("allowed"), identity, serial


def h2load(url, body, clients, seconds, rps):
    argv = ["h2load", "--h1", "-c", str(clients), "-t", "1", "-D", str(seconds), "--rps", "%.3f" % rps,
            "-d", body, "-H", "Content-Type: application/json", url]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    out = r.stdout + r.stderr
    f, q, c = H2LOAD_FINISHED.search(out), H2LOAD_REQUESTS.search(out), H2LOAD_CODES.search(out)
    if not (f and q and c):
        return {"done": 0, "ok": 0, "bad": 1, "rps": 0.0, "said": out[-2000:]}
    done, failed, errored, timeout = int(q.group(3)), int(q.group(5)), int(q.group(6)), int(q.group(7))
    ok = int(c.group(1))
    return {"done": done, "ok": ok, "bad": failed + errored + timeout + (done - ok),
            "rps": float(f.group(3)), "said": out[-2000:] if failed + errored + timeout or done != ok else ""}


def saturation(url, body):
    """The saturated rate: h2load -c 32 for a warm-up and a measured run."""
    for n in (5000, 30000):
        argv = ["h2load", "--h1", "-c", "32", "-t", "1", "-n", str(n), "-d", body,
                "-H", "Content-Type: application/json", url]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=300).stdout
    m = H2LOAD_FINISHED.search(out)
    if not m:
        raise SystemExit("soak: h2load said:\n" + out)
    return float(m.group(3))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Soak:
    def __init__(self, args):
        self.args = args
        self.stop = threading.Event()
        self.problems = {k: [] for k in ("probes", "policy", "certificates", "log")}
        self.counts = {"probes": 0, "policy_valid": 0, "policy_invalid": 0, "certificates": 0,
                       "log_rotations": 0}
        self.rss = []            # (seconds since the load began, KiB)
        self.lock = threading.Lock()

    def problem(self, kind, what):
        with self.lock:
            self.problems[kind].append(what)
        say("%s: %s" % (kind, what))

    def log_text(self):
        with open(self.server_log, errors="replace") as f:
            return f.read()

    # ---- the loops beside the load ---------------------------------------

    def policy_loop(self):
        a, b, bad = self.policy_texts
        current = a
        i = 0
        while not self.stop.wait(self.args.policy_every):
            i += 1
            if i % 5 == 0:
                refusals = self.log_text().count("policy reload refused")
                write_atomically(self.policy_path, bad)
                deadline = time.monotonic() + self.args.follow
                while time.monotonic() < deadline and self.log_text().count("policy reload refused") <= refusals:
                    time.sleep(0.05)
                if self.log_text().count("policy reload refused") <= refusals:
                    self.problem("policy", "invalid policy #%d not refused in the log within %g s"
                                 % (i, self.args.follow))
                self.check_policy(current, "after invalid policy #%d" % i)
                self.counts["policy_invalid"] += 1
                continue
            current = b if current is a else a
            write_atomically(self.policy_path, current)
            want = hashlib.sha256(current).hexdigest()
            deadline = time.monotonic() + self.args.follow
            got = None
            while time.monotonic() < deadline:
                try:
                    got = self.client.readyz()[1].get("policySha256")
                except (OSError, ssl.SSLError, ValueError) as e:
                    got = repr(e)
                if got == want:
                    break
                time.sleep(0.05)
            if got != want:
                self.problem("policy", "rewrite #%d not followed within %g s: /readyz says %s"
                             % (i, self.args.follow, got))
            self.check_policy(current, "rewrite #%d" % i)
            self.counts["policy_valid"] += 1

    def check_policy(self, text, when):
        """The policy in force is `text`: /readyz says so and the answer agrees."""
        want_sha = hashlib.sha256(text).hexdigest()
        want_id = IDENTITIES[0] if text == self.policy_texts[0] else IDENTITIES[1]
        try:
            sha = self.client.readyz()[1].get("policySha256")
            status, allowed, identity, _ = self.client.review(self.body)
        except (OSError, ssl.SSLError, ValueError) as e:
            self.problem("policy", "%s: %r" % (when, e))
            return
        if sha != want_sha or status != 200 or not allowed or identity != want_id:
            self.problem("policy", "%s: policySha256 %s (want %s), status %s, allowed %s, identity %s (want %s)"
                         % (when, sha, want_sha, status, allowed, identity, want_id))

    def cert_loop(self):
        i = 0
        while not self.stop.wait(self.args.cert_every):
            i += 1
            r = subprocess.run([self.args.bin, "certs", "--service", SERVICE, "--namespace", NAMESPACE,
                                "--ip", "127.0.0.1", "--dns", SNI, "--out", self.ca_dir, "--renew"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                self.problem("certificates", "certs --renew failed: " + r.stderr.strip())
                continue
            want = serial_of(os.path.join(self.ca_dir, "tls.crt"))
            self.volume.publish(self.ca_dir)
            deadline = time.monotonic() + self.args.follow
            got = None
            while time.monotonic() < deadline:
                try:
                    got = self.client.readyz()[2]
                except (OSError, ssl.SSLError, ValueError) as e:
                    got = repr(e)
                if got == want:
                    break
                time.sleep(0.05)
            if got != want:
                self.problem("certificates", "renewal #%d (serial %s) not served within %g s: got %s"
                             % (i, want, self.args.follow, got))
            self.counts["certificates"] += 1

    def log_loop(self):
        """logrotate without copytruncate: rename, the server reopens."""
        while not self.stop.wait(self.args.log_every):
            old = self.audit_log + ".1"
            if os.path.exists(self.audit_log):
                os.replace(self.audit_log, old)
                deadline = time.monotonic() + self.args.follow
                while time.monotonic() < deadline and not os.path.exists(self.audit_log):
                    time.sleep(0.05)
                if not os.path.exists(self.audit_log):
                    self.problem("log", "the decision log was not reopened within %g s" % self.args.follow)
                self.counts["log_rotations"] += 1
            try:
                os.unlink(old)
            except FileNotFoundError:
                pass

    def probe_loop(self):
        while not self.stop.wait(self.args.probe_every):
            try:
                status, allowed, identity, _ = self.client.review(self.body)
            except (OSError, ssl.SSLError, ValueError) as e:
                self.problem("probes", repr(e))
                continue
            self.counts["probes"] += 1
            if status != 200 or not allowed or identity not in IDENTITIES:
                self.problem("probes", "status %s, allowed %s, identity %s" % (status, allowed, identity))

    def rss_loop(self, t0):
        while not self.stop.wait(self.args.sample_every):
            try:
                self.rss.append((time.monotonic() - t0, rss_kib(self.proc.pid)))
            except OSError:
                return

    # ---- the run ----------------------------------------------------------

    def run(self):
        args = self.args
        work = os.path.abspath(args.work)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        self.ca_dir = os.path.join(work, "ca")
        r = subprocess.run([args.bin, "certs", "--service", SERVICE, "--namespace", NAMESPACE,
                            "--ip", "127.0.0.1", "--dns", SNI, "--out", self.ca_dir],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("soak: certs failed: " + r.stderr)
        self.volume = Volume(os.path.join(work, "tls"), self.ca_dir)
        os.makedirs(os.path.join(work, "policy"))
        os.makedirs(os.path.join(work, "log"))
        self.policy_path = os.path.join(work, "policy", "policy.yaml")
        self.policy_texts = policies()
        write_atomically(self.policy_path, self.policy_texts[0])
        self.audit_log = os.path.join(work, "log", "decisions.log")
        self.server_log = os.path.join(work, "server.log")
        self.body = open(os.path.join(FIXTURES, "spark35-driver.json"), "rb").read().strip()
        body_path = os.path.join(FIXTURES, "spark35-driver.json")

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        argv = [args.bin, "serve", "--policy", self.policy_path,
                "--tls-cert", os.path.join(self.volume.root, "tls.crt"),
                "--tls-key", os.path.join(self.volume.root, "tls.key"),
                "--listen", "127.0.0.1:%d" % port, "--audit-log", self.audit_log]
        if args.valgrind:
            self.valgrind_log = os.path.join(work, "valgrind.log")
            argv = ["valgrind", "--error-exitcode=99", "--leak-check=full", "--show-leak-kinds=all",
                    "--errors-for-leak-kinds=definite,indirect,possible", "--num-callers=30",
                    "--log-file=" + self.valgrind_log] + argv
        env = None
        if args.tsan:
            self.tsan_prefix = os.path.join(work, "tsan")
            env = dict(os.environ, TSAN_OPTIONS=os.environ.get("TSAN_OPTIONS", "") + " log_path=" + self.tsan_prefix)
        log = open(self.server_log, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=env)
        log.close()
        self.client = Client(port, os.path.join(self.ca_dir, "ca.crt"))
        deadline = time.monotonic() + (60 if args.valgrind or args.tsan else 10)
        while True:
            try:
                if self.client.readyz()[0] == 200:
                    break
            except (OSError, ssl.SSLError, ValueError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("soak: the server did not become ready; see " + self.server_log)
            time.sleep(0.05)

        url = "https://127.0.0.1:%d/mutate?timeout=10s" % port
        results = {}
        threads = []
        try:
            sat = 0 if args.rate else saturation(url, body_path)
            rate = args.rate or sat / 2
            clients = args.connections
            results.update(saturated=sat, rate=rate, clients=clients)
            say("%s; %g s at %.0f/s over %d connections, slices of %g s"
                % ("saturated at %.0f/s" % sat if sat else "the rate given", args.seconds, rate, clients, args.slice))
            t0 = time.monotonic()
            for target in (self.policy_loop, self.cert_loop, self.log_loop, self.probe_loop,
                           lambda: self.rss_loop(t0)):
                th = threading.Thread(target=target, daemon=True)
                th.start()
                threads.append(th)
            load = {"done": 0, "ok": 0, "bad": 0, "slices": 0, "said": []}
            cpu0 = self.cpu()
            while True:
                left = args.seconds - (time.monotonic() - t0)
                if left < 1:
                    break
                r = h2load(url, body_path, clients, int(min(args.slice, left)), rate / clients)
                load["done"] += r["done"]
                load["ok"] += r["ok"]
                load["bad"] += r["bad"]
                load["slices"] += 1
                if r["said"]:
                    load["said"].append(r["said"])
                if self.proc.poll() is not None:
                    break
            elapsed = time.monotonic() - t0
            results.update(load=load, elapsed=elapsed, achieved=load["done"] / elapsed,
                           cpu_us=(self.cpu() - cpu0) * 1e6 / max(load["done"], 1))
        finally:
            self.stop.set()
            for th in threads:
                th.join(timeout=args.follow + 15)
            results["exit"] = self.shutdown()
        return results

    def cpu(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def shutdown(self):
        if self.proc.poll() is not None:
            return {"code": self.proc.returncode, "seconds": 0.0, "early": True}
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=120 if self.args.valgrind else 25)   # --shutdown-grace is 20 s
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return {"code": code, "seconds": time.monotonic() - t, "early": False}


def memory_verdict(samples, warm_up, tolerance_kib):
    """(ok, message) on resident memory after the warm-up."""
    if not samples:
        return False, "no sample of resident memory"
    end = samples[-1][0]
    kept = [kib for t, kib in samples if t >= warm_up * end]
    if len(kept) < 6:
        return False, "only %d samples after the warm-up" % len(kept)
    third = len(kept) // 3
    first, last = statistics.median(kept[:third]), statistics.median(kept[-third:])
    growth = last - first
    msg = ("VmRSS after the warm-up (%d samples): first third median %.1f MiB, last third %.1f MiB, "
           "growth %+d KiB (tolerance %d KiB); whole run %.1f-%.1f MiB"
           % (len(kept), first / 1024, last / 1024, growth, tolerance_kib,
              min(k for _, k in samples) / 1024, max(k for _, k in samples) / 1024))
    return growth <= tolerance_kib, msg


def valgrind_verdict(log):
    """(ok, message) on memcheck's report of the server."""
    try:
        with open(log, errors="replace") as f:
            text = f.read()
    except (OSError, TypeError):
        return False, "no valgrind report"
    m = re.search(r"ERROR SUMMARY: ([\d,]+) errors", text)
    lost = {k: int(v.replace(",", "")) for k, v in
            re.findall(r"(definitely|indirectly|possibly) lost: ([\d,]+) bytes", text)}
    if not m:
        return False, "valgrind's report has no error summary; see " + log
    errors = int(m.group(1).replace(",", ""))
    msg = ("memcheck: %d errors; lost: definitely %d, indirectly %d, possibly %d bytes (report: %s)"
           % (errors, lost.get("definitely", 0), lost.get("indirectly", 0), lost.get("possibly", 0), log))
    if errors:
        msg += "\n" + text[-6000:]
    return errors == 0 and not any(lost.values()), msg


def tsan_verdict(prefix, proc):
    """(ok, message) on ThreadSanitizer's reports of the server, written to
    PREFIX.PID (log_path); the server must have run and exited."""
    if not prefix or proc is None or proc.poll() is None:
        return False, "the server did not run to its end"
    path = "%s.%d" % (prefix, proc.pid)
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return True, "no ThreadSanitizer report (exit status %d)" % proc.returncode
    warnings = re.findall(r"^WARNING: ThreadSanitizer: (.*) \(pid=", text, re.M)
    return False, ("%d ThreadSanitizer reports (%s); see %s\n%s"
                   % (len(warnings), ", ".join(sorted(set(warnings))) or "?", path, text[:6000]))


def report(soak, res, args):
    """The checks: [(name, ok, message)]."""
    checks = []
    load = res.get("load", {"done": 0, "ok": 0, "bad": 1, "slices": 0, "said": []})
    msg = ("%d requests in %d h2load slices over %.0f s, %.0f/s achieved (target %.0f/s%s, %d connections): "
           "%d not answered 2xx (failed, errored, timed out or another status); %.1f µs CPU per request"
           % (load["done"], load["slices"], res.get("elapsed", 0), res.get("achieved", 0), res.get("rate", 0),
              ", half of the saturated %.0f/s" % res["saturated"] if res.get("saturated") else "",
              res.get("clients", 0), load["bad"], res.get("cpu_us", 0)))
    if load["said"]:
        msg += "\nh2load said:\n" + "\n".join(load["said"][:3])
    checks.append(("requests", load["done"] > 0 and load["bad"] == 0, msg))
    c, p = soak.counts, soak.problems
    checks.append(("probes", c["probes"] > 0 and not p["probes"],
                   "%d new verified connections, one review each; %d problems%s"
                   % (c["probes"], len(p["probes"]), ": " + "; ".join(p["probes"][:5]) if p["probes"] else "")))
    checks.append(("policy", c["policy_valid"] > 0 and c["policy_invalid"] > 0 and not p["policy"] and not p["log"],
                   "%d valid rewrites followed, %d invalid refused with the old policy serving, %d decision-log "
                   "rotations; %d problems%s"
                   % (c["policy_valid"], c["policy_invalid"], c["log_rotations"], len(p["policy"]) + len(p["log"]),
                      ": " + "; ".join((p["policy"] + p["log"])[:5]) if p["policy"] or p["log"] else "")))
    checks.append(("certificates", c["certificates"] > 0 and not p["certificates"],
                   "%d renewed pairs served to new handshakes; %d problems%s"
                   % (c["certificates"], len(p["certificates"]),
                      ": " + "; ".join(p["certificates"][:5]) if p["certificates"] else "")))
    if args.valgrind:
        checks.append(("valgrind",) + valgrind_verdict(getattr(soak, "valgrind_log", None)))
    elif args.tsan:
        checks.append(("tsan",) + tsan_verdict(getattr(soak, "tsan_prefix", None), getattr(soak, "proc", None)))
    else:
        checks.append(("memory",) + memory_verdict(soak.rss, args.warm_up, args.rss_tolerance_kib))
    ex = res.get("exit", {"code": None, "seconds": 0, "early": True})
    checks.append(("shutdown", ex["code"] == 0 and not ex["early"],
                   "%s with status %s after %.1f s" % ("exited early" if ex["early"] else "SIGTERM: exited",
                                                        ex["code"], ex["seconds"])))
    return checks


def write_junit(checks, path, seconds):
    suite = ET.Element("testsuite", name="soak", tests=str(len(checks)),
                       failures=str(sum(1 for _, ok, _ in checks if not ok)), errors="0", skipped="0",
                       time="%.1f" % seconds)
    for name, ok, msg in checks:
        case = ET.SubElement(suite, "testcase", classname="soak", name=name, time="0")
        if ok:
            ET.SubElement(case, "system-out").text = msg
        else:
            ET.SubElement(case, "failure", message=msg.split("\n", 1)[0]).text = msg
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the spark-identity-webhook binary")
    ap.add_argument("--work", required=True, help="a directory of its own (emptied first)")
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--junit", help="write the checks as JUnit XML here")
    ap.add_argument("--rate", type=float, default=0, help="requests/s (default: half of saturation)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--slice", type=float, default=60, help="seconds of one h2load run")
    ap.add_argument("--policy-every", type=float, default=2)
    ap.add_argument("--cert-every", type=float, default=5)
    ap.add_argument("--log-every", type=float, default=10)
    ap.add_argument("--probe-every", type=float, default=0.2)
    ap.add_argument("--sample-every", type=float, default=2)
    ap.add_argument("--follow", type=float, default=10, help="seconds a change may take to be served")
    ap.add_argument("--warm-up", type=float, default=0.2, help="share of the run before memory counts")
    ap.add_argument("--rss-tolerance-kib", type=int, default=1024)
    ap.add_argument("--valgrind", action="store_true", help="run the server under valgrind's memcheck")
    ap.add_argument("--tsan", action="store_true", help="the binary is a ThreadSanitizer build")
    args = ap.parse_args()
    if (args.valgrind or args.tsan) and not args.rate:
        ap.error("--valgrind and --tsan need --rate")

    soak = Soak(args)
    t = time.monotonic()
    res = {}
    try:
        res = soak.run()
    finally:
        checks = report(soak, res, args)
        if args.junit:
            write_junit(checks, args.junit, time.monotonic() - t)
    for name, ok, msg in checks:
        print("soak %-13s %s  %s" % (name, "ok  " if ok else "FAIL", msg.split("\n", 1)[0]))
    bad = [m for _, ok, m in checks if not ok and "\n" in m]
    for m in bad:
        print(m, file=sys.stderr)
    print("soak: %d passed, %d failed" % (sum(ok for _, ok, _ in checks), sum(not ok for _, ok, _ in checks)))
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
