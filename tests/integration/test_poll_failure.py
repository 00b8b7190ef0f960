"""A failure of the main loop's poll() (other than EINTR) stops the server
the way SIGTERM does: the line says why, /readyz fails through
--shutdown-delay, the requests in flight drain, and the process exits 2.
poll() is made to fail by a preloaded shim, once a trigger file exists."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

from conftest import ROOT, Server

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

/* The main loop's poll (its timeout is WH_POLICY_POLL_MS) fails with
 * ENOMEM once $POLL_FAIL_FILE exists. */
int poll(struct pollfd *fds, nfds_t n, int timeout)
{
        static int (*real)(struct pollfd *, nfds_t, int);
        if (!real)
                real = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
        const char *f = getenv("POLL_FAIL_FILE");
        if (timeout == 2000 && n <= 2 && f && access(f, F_OK) == 0) {
                errno = ENOMEM;
                return -1;
        }
        return real(fds, n, timeout);
}
"""


def test_poll_failure_drains_and_exits_2(tmp_path, certs, workdir):
    cc = shutil.which("cc")
    assert cc, "no C compiler to build the poll() shim"
    src = tmp_path / "pollfail.c"
    src.write_text(SHIM)
    lib = tmp_path / "pollfail.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src), "-ldl"], check=True)
    trigger = tmp_path / "fail-now"
    s = Server("poll-failure", certs, ROOT / "tests" / "fixtures" / "policy.yaml", workdir,
               extra=["--shutdown-delay", 1, "--shutdown-grace", 2])
    s.env = dict(os.environ, LD_PRELOAD=str(lib), POLL_FAIL_FILE=str(trigger),
                 ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    s.start()
    try:
        trigger.touch()
        # Within the loop's next round (2 s), readiness fails while the
        # server still answers: the drain has begun, not an exit.
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:
            status, _, body = s.client().request("GET", "/readyz", timeout=2)
            if status == 503:
                assert json.loads(body)["reason"] == "shutting down"
                break
            time.sleep(0.05)
        assert status == 503, f"/readyz never failed:\n{s.stderr()}"
        assert s.proc.wait(10) == 2
        lines = [json.loads(l) for l in s.stderr_path.read_text().splitlines() if l.startswith("{")]
        down = [l for l in lines if l.get("msg") == "shutting down"]
        assert len(down) == 1, s.stderr()
        assert down[0]["level"] == "error"
        assert down[0]["error"] == "poll: Cannot allocate memory"
        assert down[0]["delaySeconds"] == 1 and down[0]["graceSeconds"] == 2
        assert "signal" not in down[0]
    finally:
        s.stop()
