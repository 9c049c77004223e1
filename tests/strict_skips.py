"""A pytest plugin (tests/conftest.py loads it): in CI (CI set, as CI services set it) or with
SNNFAST_STRICT_SKIPS=1, a skipped test fails unless its reason says it needs a GPU, CUDA or a
second device, the one thing a correct install may lack. Anything else install.sh installs,
so a skip for it hides a broken install (the dataset tests skipped on every fresh machine
while tonic failed to import)."""
from __future__ import annotations

import os
import re

import pytest

ALLOWED = re.compile(r"\b(GPU|GPUs|CUDA|second device)\b")


def strict() -> bool:
    return (os.environ.get("SNNFAST_STRICT_SKIPS") == "1"
            or os.environ.get("CI", "").lower() in ("1", "true", "yes"))


def _reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _fail_if_not_allowed(report) -> None:
    if not (report.skipped and strict()) or hasattr(report, "wasxfail"):
        return
    reason = _reason(report)
    if not ALLOWED.search(reason):
        report.outcome = "failed"
        report.longrepr = (f"skipped with {reason!r}: in CI (or with SNNFAST_STRICT_SKIPS=1) only a test "
                           "that needs a GPU, CUDA or a second device may skip; install what it needs "
                           "(bash install.sh --test; python3 tests/check_imports.py lists what is missing)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_if_not_allowed(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_if_not_allowed(outcome.get_result())
