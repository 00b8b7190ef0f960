#!/usr/bin/env python3
"""The measurements of `make bench` (issue 6, "Benchmark"); tests/bench/run.sh
builds everything first and then runs `bench.py run`.

The real server and the floor probe (tests/bench/floor.c) run side by side
in the same run, phase after phase, alternating, so that machine noise
touches both; every figure is reported for both, with the ratio.

  bench.py bodies OUTDIR      write the request bodies (also used by run.sh)
  bench.py run --server BIN --floor BIN --micro BIN ... (see --help)

Loads go to 127.0.0.1 only. Standard library only.
"""
import argparse
import json
import math
import os
import re
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# The bodies: (name, description). The driver with managedFields is what the
# API server sends for a Spark 3.5 driver; without them it is the ~3.5 KB
# review of the floor figures.
BODIES = [
    ("driver-3.5k", "Spark 3.5 driver, no managedFields"),
    ("driver-5.6k", "Spark 3.5 driver, as the API server sends it"),
    ("executor-9.7k", "Spark 3.5 executor, as the API server sends it"),
    ("pod-1m", "the driver padded to 1 MiB with env entries"),
]
ONE_MIB = 1024 * 1024
LAT_PER_CONN = 2000.0   # requests per second per connection in the fixed-rate runs


def compact(doc):
    return json.dumps(doc, separators=(",", ":")).encode()


def make_bodies(outdir):
    """Writes the review bodies; returns {name: path}."""
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(FIXTURES, "spark35-driver.json"), "rb") as f:
        driver_raw = f.read()
    with open(os.path.join(FIXTURES, "spark35-executor.json"), "rb") as f:
        executor_raw = f.read()
    driver = json.loads(driver_raw)
    slim = json.loads(driver_raw)
    slim["request"]["object"]["metadata"].pop("managedFields", None)
    big = json.loads(driver_raw)
    containers = big["request"]["object"]["spec"]["containers"]
    spark = next((c for c in containers if c.get("name") == "spark-kubernetes-driver"), containers[0])
    env = spark.setdefault("env", [])
    base = len(compact(big))
    entry = len(compact({"name": "BENCH_PAD_00000", "value": "x" * 200})) + 1
    for i in range((ONE_MIB - base - 512) // entry):   # the rest: one annotation
        env.insert(0, {"name": "BENCH_PAD_%05d" % i, "value": "x" * 200})
    big["request"]["object"]["metadata"].setdefault("annotations", {})["bench.spark-identity.io/pad"] = ""
    pad = ONE_MIB - len(compact(big))
    big["request"]["object"]["metadata"]["annotations"]["bench.spark-identity.io/pad"] = "y" * max(pad, 0)
    out = {
        "driver-3.5k": compact(slim),
        "driver-5.6k": driver_raw.strip(),     # byte for byte the fixture
        "executor-9.7k": executor_raw.strip(),
        "pod-1m": compact(big),
    }
    paths = {}
    for name, data in out.items():
        p = os.path.join(outdir, name + ".json")
        with open(p, "wb") as f:
            f.write(data)
        paths[name] = p
    return paths


# ---- processes -------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat_cpu(pid):
    """utime + stime of the process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def readyz_ok(port, ctx):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
            # Without it the request waits behind the handshake's last
            # segment for the server's delayed ACK (40 ms), as curl knows.
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                head = s.recv(64)
                return head.startswith(b"HTTP/1.1 200")
    except (OSError, ssl.SSLError):
        return False


class Target:
    """A server under test: the real one or the floor."""

    def __init__(self, name, argv_for_port, log_path, ctx, pin=None):
        self.name = name
        self.argv_for_port = argv_for_port
        self.log_path = log_path
        self.ctx = ctx
        self.pin = pin
        self.proc = None
        self.port = None

    def start(self):
        """Starts it; returns milliseconds from exec to the first 200 on /readyz."""
        for _ in range(5):           # a port taken meanwhile by someone else: another one
            self.port = free_port()
            log = open(self.log_path, "ab")
            t0 = time.perf_counter()
            argv = self.argv_for_port(self.port)
            if self.pin is not None:
                argv = ["taskset", "-c", self.pin] + argv
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                         stderr=log, close_fds=True)
            log.close()
            deadline = t0 + 10
            while time.perf_counter() < deadline and self.proc.poll() is None:
                if readyz_ok(self.port, self.ctx):
                    return (time.perf_counter() - t0) * 1e3
                time.sleep(0.0005)
            self.stop()
        raise SystemExit("bench: %s did not become ready; see %s" % (self.name, self.log_path))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def url(self):
        return "https://127.0.0.1:%d/mutate?timeout=10s" % self.port


# ---- h2load ----------------------------------------------------------------

H2LOAD_RE = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
REQS_RE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed")
CODES_RE = re.compile(r"status codes: (\d+) 2xx")


H2LOAD_PREFIX = []   # ["taskset", "-c", "1"] with --pin


def h2load(url, body, clients, n, rps=None, log_file=None, timeout=120):
    argv = H2LOAD_PREFIX + ["h2load", "--h1", "-c", str(clients), "-t", "1", "-n", str(max(n, clients)),
                            "-d", body, "-H", "Content-Type: application/json"]
    if rps:
        argv += ["--rps", "%.3f" % rps]
    if log_file:
        if os.path.exists(log_file):
            os.unlink(log_file)   # h2load appends
        argv += ["--log-file", log_file]
    argv.append(url)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    m, q, c = H2LOAD_RE.search(out), REQS_RE.search(out), CODES_RE.search(out)
    if not (m and q and c):
        raise SystemExit("bench: h2load said:\n" + out)
    return {"rps": float(m.group(3)), "done": int(q.group(3)), "ok": int(c.group(1)),
            "failed": int(q.group(5)) + (int(q.group(3)) - int(c.group(1)))}


def percentiles(log_file):
    """p50, p99, p99.9 in µs of the 2xx requests of an h2load --log-file."""
    lat = []
    with open(log_file) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[1].startswith("2"):
                lat.append(int(parts[2]))
    lat.sort()
    if not lat:
        return None

    def q(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))]
    return {"p50": q(0.50), "p99": q(0.99), "p999": q(0.999), "n": len(lat)}


# ---- the run ---------------------------------------------------------------

def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def machine_busy():
    """CPU seconds all processes have used since boot (every core)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / TICK   # user nice system irq softirq steal


def our_cpu():
    """CPU seconds of this process and every child it has waited for."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def callgrind(micro, policy, body, n, out_file, extra=()):
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out_file,
            "--collect-atstart=no", "--toggle-collect=bench_loop", micro, *extra, policy, body, str(n)]
    r = subprocess.run(argv, capture_output=True, text=True)
    m = re.search(r"Collected : (\d+)", r.stderr)
    if r.returncode != 0 or not m:
        raise SystemExit("bench: callgrind failed:\n" + r.stderr[-2000:])
    return int(m.group(1)) / n


def callgrind_breakdown(out_file, n, names):
    """Inclusive instructions per admission of the named functions."""
    r = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", out_file],
                       capture_output=True, text=True)
    found = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S*?:([\w.]+)(?:'\d+)? ", line + " ")
        if m and m.group(2) in names and m.group(2) not in found:
            found[m.group(2)] = int(m.group(1).replace(",", "")) / n
    return found


def say(what):
    print("bench: " + what, file=sys.stderr, flush=True)


def run(args):
    work = args.work
    os.makedirs(work, exist_ok=True)
    bodies = make_bodies(os.path.join(work, "bodies"))
    ctx = ssl.create_default_context(cafile=args.ca)
    policy = args.policy
    res = {"load_before": loadavg(), "cores": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    t_begin = time.perf_counter()
    busy0, ours0 = machine_busy(), our_cpu()

    def server_argv(port):
        return [args.server, "serve", "--policy", policy, "--tls-cert", args.cert, "--tls-key", args.key,
                "--listen", "127.0.0.1:%d" % port]

    def floor_argv(port, parse=True):
        return [args.floor, "--cert", args.cert, "--key", args.key, "--listen", str(port)] + \
               ([] if parse else ["--no-parse"])

    server_log = os.path.join(work, "server.log")
    open(server_log, "wb").close()
    pin = "0" if args.pin else None
    if args.pin:
        H2LOAD_PREFIX[:] = ["taskset", "-c", "1"]
    srv = Target("server", server_argv, server_log, ctx, pin)
    flo = Target("floor", floor_argv, os.path.join(work, "floor.log"), ctx, pin)
    flo_np = Target("floor --no-parse", lambda p: floor_argv(p, parse=False),
                    os.path.join(work, "floor.log"), ctx, pin)
    targets = [srv, flo]

    try:
        say("start-up")
        # Start-up to ready, alternating; the last start of each stays up.
        starts = {t.name: [] for t in targets}
        for i in range(args.starts):
            for t in targets:
                starts[t.name].append(t.start())
                if i < args.starts - 1:
                    t.stop()
        with open(server_log) as f:
            micros = [int(m.group(1)) for m in re.finditer(r'"startupMicros":(\d+)', f.read())]
        res["startup_ms"] = {k: statistics.median(v) for k, v in starts.items()}
        res["startup_micros_log"] = statistics.median(micros) if micros else None
        flo_np.start()

        say("memory, idle and at 256 connections")
        # Resident memory, idle, then while 256 connections push driver reviews.
        time.sleep(0.5)
        res["rss_idle_kib"] = {t.name: proc_status_kib(t.pid, "VmRSS") for t in targets}
        res["anon_idle_kib"] = {t.name: proc_status_kib(t.pid, "RssAnon") for t in targets}
        res["rss256_kib"], res["hwm256_kib"], res["anon256_kib"], res["conn256"] = {}, {}, {}, {}
        for t in targets:
            peak = [0, 0]
            stop = threading.Event()

            def sample(pid=t.pid):
                while not stop.is_set():
                    peak[0] = max(peak[0], proc_status_kib(pid, "VmRSS"))
                    peak[1] = max(peak[1], proc_status_kib(pid, "RssAnon"))
                    time.sleep(0.01)
            th = threading.Thread(target=sample)
            th.start()
            r = h2load(t.url(), bodies["driver-5.6k"], 256, 256 * args.conn256_per_client)
            stop.set()
            th.join()
            res["rss256_kib"][t.name] = peak[0]
            res["anon256_kib"][t.name] = peak[1]
            res["hwm256_kib"][t.name] = proc_status_kib(t.pid, "VmHWM")
            res["conn256"][t.name] = r

        # Saturated throughput and CPU per request, alternating rounds.
        res["sat"] = {}
        for name, _ in BODIES:
            say("saturated throughput, " + name)
            n = args.sat_n_big if name == "pod-1m" else args.sat_n
            rounds = {t.name: [] for t in targets + [flo_np]}
            for i in range(args.rounds):
                order = targets + ([flo_np] if name == "driver-3.5k" else [])
                for t in (order if i % 2 == 0 else order[::-1]):   # neither always goes first
                    c0 = proc_stat_cpu(t.pid)
                    r = h2load(t.url(), bodies[name], 32, n)
                    r["cpu_us"] = (proc_stat_cpu(t.pid) - c0) * 1e6 / max(r["done"], 1)
                    rounds[t.name].append(r)
            res["sat"][name] = {k: {"rps": statistics.median(x["rps"] for x in v),
                                    "cpu_us": statistics.median(x["cpu_us"] for x in v),
                                    "failed": sum(x["failed"] for x in v),
                                    "all": [round(x["rps"]) for x in v]}
                                for k, v in rounds.items() if v}
            # Rounds next to each other share the machine's mood: the ratio
            # is the median of the rounds' ratios.
            res["sat"][name]["pair_ratio"] = statistics.median(
                a["rps"] / b["rps"] for a, b in zip(rounds["server"], rounds["floor"]))
            open(server_log, "wb").close()   # the decision lines: only the start-up ones were needed

        # Latency at fixed rates: 1,000/s, and half of the floor's saturation.
        res["lat"] = {}
        for name in args.latency_bodies:
            say("latency at fixed rates, " + name)
            half = res["sat"][name]["floor"]["rps"] / 2
            for label, rate in (("1000", 1000.0), ("half", half)):
                # h2load's --rps adds its own delay when each connection's
                # rate is low (against the floor at 1,000/s: p50 91 µs over
                # one connection, 666 µs over ten), and the server does not
                # care how the requests are spread: as few connections as
                # carry the rate, each at most LAT_PER_CONN/s.
                clients = max(1, math.ceil(rate / LAT_PER_CONN))
                n = max(int(rate * args.lat_seconds), clients)
                for t in targets:
                    lf = os.path.join(work, "lat-%s-%s-%s.log" % (t.name, name, label))
                    r = h2load(t.url(), bodies[name], clients, n, rps=rate / clients, log_file=lf)
                    p = percentiles(lf)
                    p.update(rate=rate, clients=clients, achieved=r["rps"], failed=r["failed"])
                    res["lat"].setdefault(name, {}).setdefault(label, {})[t.name] = p
            open(server_log, "wb").close()
    finally:
        for t in targets + [flo_np]:
            t.stop()

    # Whole processes under callgrind: instructions per request.
    say("instructions per request of the whole processes (callgrind)")
    res["proc_ir"] = {
        "server": process_instructions("server", server_argv, ctx, bodies["driver-5.6k"], args.proc_n,
                                       os.path.join(work, "callgrind-server-process.out")),
        "floor": process_instructions("floor", floor_argv, ctx, bodies["driver-5.6k"], args.proc_n,
                                      os.path.join(work, "callgrind-floor-process.out")),
    }

    # The microbenchmark and its instruction counts, the server's admission
    # against the floor's parse.
    res["micro"] = {}
    for name, _ in BODIES:
        say("microbenchmark and callgrind, " + name)
        n = args.micro_n_big if name == "pod-1m" else args.micro_n
        cg_n = max(2, n // 100)
        entry = {}
        for mode, extra in (("server", ()), ("floor", ("--floor",))):
            runs = [micro_run_mode(args.micro, policy, bodies[name], n, extra) for _ in range(3)]
            out = os.path.join(work, "callgrind-%s-%s.out" % (mode, name))
            entry[mode] = {"us": statistics.median(float(r["cpu_us_per_op"]) for r in runs),
                           "ir": callgrind(args.micro, policy, bodies[name], cg_n, out, extra)}
            if mode == "server":
                entry["breakdown"] = callgrind_breakdown(out, cg_n, BREAKDOWN)
        res["micro"][name] = entry

    res["load_after"] = loadavg()
    res["seconds"] = time.perf_counter() - t_begin
    # What the rest of the machine did meanwhile: its CPU use is the noise.
    res["others_cpu_s"] = max(0.0, (machine_busy() - busy0) - (our_cpu() - ours0))
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    md = report(res, args)
    with open(args.out, "w") as f:
        f.write(md)
    print(md)
    return 0


def micro_run_mode(micro, policy, body, n, extra):
    r = subprocess.run([micro, *extra, policy, body, str(n)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("bench: micro failed: " + r.stderr)
    return dict(kv.split("=", 1) for kv in r.stdout.split())


def process_instructions(name, argv_for_port, ctx, body, n, out_file):
    """Instructions per request of a whole server process under callgrind
    (TLS, HTTP, admission, logging): counted from the first request to the
    last, start-up left out; also the inclusive counts of some functions."""
    for f in (out_file, out_file + ".1"):
        if os.path.exists(f):
            os.unlink(f)
    port = free_port()
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out_file,
                             *argv_for_port(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.perf_counter() + 60
        while not readyz_ok(port, ctx):
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise SystemExit("bench: %s under callgrind did not become ready" % name)
            time.sleep(0.1)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True, check=True)
        r = h2load("https://127.0.0.1:%d/mutate?timeout=10s" % port, body, 4, n, timeout=600)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    dump = out_file + ".1"
    with open(dump) as f:
        total = int(re.search(r"^totals: (\d+)", f.read(), re.M).group(1))
    return {"ir": total / r["done"],
            "fn": callgrind_breakdown(dump, r["done"], ["serve_admit", "admission_parse", "admission_decide",
                                                         "admission_free_arena", "admission_free",
                                                         "gnutls_record_recv", "gnutls_record_send"])}


BREAKDOWN = ["review_parse", "cJSON_ParseWithLengthOpts", "mutate_pod", "review_respond",
             "admission_free_arena", "admission_free", "review_free", "policy_resolve", "arena_end"]


# ---- the report ------------------------------------------------------------

def ratio(a, b):
    return "%.2f" % (a / b) if b else "–"


def fmt_int(x):
    return "{:,}".format(int(round(x)))


def mib(kib):
    return "%.1f MiB" % (kib / 1024)


def verdict(ok):
    return "**yes**" if ok else "**NO**"


def report(res, args):
    L = []
    la, lb = res["load_before"], res["load_after"]
    L.append("## spark-identity-webhook benchmark (`make bench`)\n")
    others = res["others_cpu_s"]
    L.append("%s, %d cores, %.0f s. Load average before %.2f/%.2f/%.2f, after %.2f/%.2f/%.2f "
             "(1/5/15 min). Other processes used %.1f CPU-seconds meanwhile, %.0f%% of one core "
             "on average: %s. Server and floor measured side by side, alternating, in this run; "
             "%s, keep-alive TLS 1.3, 127.0.0.1. Throughput: median "
             "of %d rounds of -n %d (-n %d for 1 MiB), the order alternating; the ratio is the median of "
             "the rounds' ratios. Latency: h2load --rps over "
             "ceil(rate / %d) connections, %g s per figure.\n"
             % (res["started"], res["cores"], res["seconds"], *la, *lb, others,
                100 * others / res["seconds"],
                "quiet" if others / res["seconds"] < 0.1 else "NOISY, compare ratios only",
                "servers pinned to CPU 0 and h2load --h1 -t 1 to CPU 1" if args.pin
                else "h2load --h1 -t 1 on the same cores",
                args.rounds, args.sat_n, args.sat_n_big, LAT_PER_CONN, args.lat_seconds))
    L.append("| figure | server | floor | server/floor | target | met |")
    L.append("| --- | ---: | ---: | ---: | --- | --- |")
    sat = res["sat"]
    for name, desc in BODIES:
        s, f = sat[name]["server"], sat[name]["floor"]
        size = os.path.getsize(os.path.join(args.work, "bodies", name + ".json"))
        fail = "" if not (s["failed"] or f["failed"]) else " (failed: %d / %d)" % (s["failed"], f["failed"])
        pr = sat[name]["pair_ratio"]
        L.append("| saturated throughput, %s (%s B), -c 32, req/s, median (rounds' range)%s | %s (%s–%s) | %s (%s–%s) | %.2f | ≥ 0.90 of floor | %s |"
                 % (desc, fmt_int(size), fail, fmt_int(s["rps"]), fmt_int(min(s["all"])), fmt_int(max(s["all"])),
                    fmt_int(f["rps"]), fmt_int(min(f["all"])), fmt_int(max(f["all"])), pr, verdict(pr >= 0.9)))
    np_ = sat["driver-3.5k"].get("floor --no-parse")
    if np_:
        L.append("| saturated throughput, driver 3.5 KB, floor without the parse, req/s | | %s (%s–%s) | | reference | |"
                 % (fmt_int(np_["rps"]), fmt_int(min(np_["all"])), fmt_int(max(np_["all"]))))
    for name in args.latency_bodies:
        for label in ("1000", "half"):
            e = res["lat"][name][label]
            s, f = e["server"], e["floor"]
            rate = ("1,000/s" if label == "1000" else "%s/s (half the floor's saturation)" % fmt_int(e["server"]["rate"])) + \
                ", %d conn." % e["server"]["clients"]
            for q, qn in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
                tgt, met = "", ""
                if label == "1000" and q == "p99":
                    tgt, met = "< 1 ms", verdict(s[q] < 1000)
                fail = "" if not (s["failed"] or f["failed"]) or q != "p50" else \
                    " (failed: %d / %d)" % (s["failed"], f["failed"])
                L.append("| latency %s, %s at %s%s, µs | %s | %s | %s | %s | %s |"
                         % (qn, name, rate, fail, fmt_int(s[q]), fmt_int(f[q]), ratio(s[q], f[q]), tgt, met))
    ri, r256, h256 = res["rss_idle_kib"], res["rss256_kib"], res["hwm256_kib"]
    ai, a256 = res["anon_idle_kib"], res["anon256_kib"]
    L.append("| resident memory idle, VmRSS | %s | %s | %s | | |"
             % (mib(ri["server"]), mib(ri["floor"]), ratio(ri["server"], ri["floor"])))
    L.append("| resident memory idle, of which anonymous (RssAnon) | %s | %s | %s | | |"
             % (mib(ai["server"]), mib(ai["floor"]), ratio(ai["server"], ai["floor"])))
    c256 = res["conn256"]
    fail = "" if not (c256["server"]["failed"] or c256["floor"]["failed"]) else \
        " (failed: %d / %d)" % (c256["server"]["failed"], c256["floor"]["failed"])
    L.append("| resident memory at 256 connections (h2load -c 256, driver 5.6 KB)%s, VmHWM | %s | %s | %s | < 16 MiB | %s |"
             % (fail, mib(h256["server"]), mib(h256["floor"]), ratio(h256["server"], h256["floor"]),
                verdict(h256["server"] < 16 * 1024)))
    L.append("| resident memory at 256 connections, of which anonymous (peak RssAnon) | %s | %s | %s | | |"
             % (mib(a256["server"]), mib(a256["floor"]), ratio(a256["server"], a256["floor"])))
    st = res["startup_ms"]
    L.append("| start-up: exec to first 200 on /readyz, ms (median of %d) | %.1f | %.1f | %s | < 50 ms | %s |"
             % (args.starts, st["server"], st["floor"], ratio(st["server"], st["floor"]), verdict(st["server"] < 50)))
    if res["startup_micros_log"] is not None:
        L.append("| start-up: the server's own `startupMicros`, ms | %.1f | | | < 50 ms | %s |"
                 % (res["startup_micros_log"] / 1000, verdict(res["startup_micros_log"] < 50000)))
    for name, desc in BODIES:
        s, f = sat[name]["server"], sat[name]["floor"]
        L.append("| CPU per request under saturation (utime+stime), %s, µs | %.1f | %.1f | %s | | |"
                 % (name, s["cpu_us"], f["cpu_us"], ratio(s["cpu_us"], f["cpu_us"])))
    pi = res["proc_ir"]
    L.append("| instructions per request, whole process (TLS, HTTP, admission, log), driver-5.6k, callgrind | %s | %s | %s | stable figure | |"
             % (fmt_int(pi["server"]["ir"]), fmt_int(pi["floor"]["ir"]), ratio(pi["server"]["ir"], pi["floor"]["ir"])))
    mi = res["micro"]
    for name, desc in BODIES:
        s, f = mi[name]["server"], mi[name]["floor"]
        drv = name.startswith("driver")
        L.append("| parse + decide + respond, %s, CPU µs per op (floor: cJSON parse + answer) | %.1f | %.1f | %s | %s | %s |"
                 % (name, s["us"], f["us"], ratio(s["us"], f["us"]), "< 30 µs" if drv else "",
                    verdict(s["us"] < 30) if drv else ""))
        L.append("| the same, callgrind instructions per op | %s | %s | %s | stable figure | |"
                 % (fmt_int(s["ir"]), fmt_int(f["ir"]), ratio(s["ir"], f["ir"])))
    L.append("")
    fn = pi["server"]["fn"]
    if "serve_admit" in fn and "admission_parse" in fn and "admission_decide" in fn:
        total = pi["server"]["ir"]
        adm, handle = fn["serve_admit"], fn["admission_parse"] + fn["admission_decide"]
        free_ = fn.get("admission_free_arena", 0) + fn.get("admission_free", 0)
        L.append("Where the server's %s instructions per driver request (5.6 KB) go (callgrind, whole process; "
                 "the floor: %s):" % (fmt_int(total), fmt_int(pi["floor"]["ir"])))
        L.append("")
        L.append("| part | instructions | share |")
        L.append("| --- | ---: | ---: |")
        for label, v in (("`admission_parse()` and `admission_decide()`: parse, decide, respond", handle),
                         ("`admission_free_arena()` (the parsed tree is left to the arena)", free_),
                         ("the rest of `serve_admit()`: the decision log line, metrics", adm - handle - free_),
                         ("GnuTLS records in and out", fn.get("gnutls_record_recv", 0) + fn.get("gnutls_record_send", 0)),
                         ("everything else: libmicrohttpd (its pool is zeroed per request), epoll, malloc",
                          total - adm - fn.get("gnutls_record_recv", 0) - fn.get("gnutls_record_send", 0))):
            L.append("| %s | %s | %.0f%% |" % (label, fmt_int(v), 100 * v / total))
        L.append("")
    bd = mi["driver-5.6k"].get("breakdown") or {}
    if bd:
        total = mi["driver-5.6k"]["server"]["ir"]
        L.append("Where the driver review's (5.6 KB) %s instructions go (callgrind, inclusive):"
                 % fmt_int(total))
        L.append("")
        L.append("| function | instructions | share |")
        L.append("| --- | ---: | ---: |")
        for k in BREAKDOWN:
            if k in bd:
                L.append("| `%s` | %s | %.0f%% |" % (k, fmt_int(bd[k]), 100 * bd[k] / total))
        L.append("")
    L.append("Saturated rounds (req/s): " + "; ".join(
        "%s %s" % (name, ", ".join("%s %s" % (k, v["all"]) for k, v in sat[name].items() if isinstance(v, dict)))
        for name, _ in BODIES))
    L.append("")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bodies")
    b.add_argument("outdir")
    r = sub.add_parser("run")
    r.add_argument("--server", required=True)
    r.add_argument("--floor", required=True)
    r.add_argument("--micro", required=True)
    r.add_argument("--cert", required=True)
    r.add_argument("--key", required=True)
    r.add_argument("--ca", required=True)
    r.add_argument("--policy", default=os.path.join(FIXTURES, "policy.yaml"))
    r.add_argument("--work", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--rounds", type=int, default=7)
    r.add_argument("--pin", action="store_true",
                   help="servers on CPU 0, h2load on CPU 1: less spread, one core's throughput")
    r.add_argument("--starts", type=int, default=5)
    r.add_argument("--sat-n", type=int, default=20000)
    r.add_argument("--sat-n-big", type=int, default=300)
    r.add_argument("--conn256-per-client", type=int, default=40)
    r.add_argument("--lat-seconds", type=float, default=5)
    r.add_argument("--latency-bodies", nargs="+", default=["driver-3.5k", "driver-5.6k", "executor-9.7k"])
    r.add_argument("--micro-n", type=int, default=20000)
    r.add_argument("--proc-n", type=int, default=2000)
    r.add_argument("--micro-n-big", type=int, default=40)
    a = ap.parse_args()
    if a.cmd == "bodies":
        for name, path in make_bodies(a.outdir).items():
            print(name, os.path.getsize(path), path)
        return 0
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
