"""The server's last log lines in the report of a test that used it and failed."""
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    served = getattr(item, "funcargs", {}).get("served")
    if rep.failed and served is not None:
        rep.sections.append(("serve's stderr (last lines)", served.stderr()))
