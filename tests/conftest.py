"""Shared test setup: single-threaded torch (2 shared cores make tiny nets slower with more threads),
headless MuJoCo rendering, SB3 loggers in one temporary folder, and strict mode for the full install."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
# SB3's learn() makes a fresh timestamped folder under /tmp for its logger unless SB3_LOGDIR is set
if "SB3_LOGDIR" not in os.environ:
    os.environ["SB3_LOGDIR"] = tempfile.mkdtemp(prefix="shieldgym-tests-sb3-")
    atexit.register(shutil.rmtree, os.environ["SB3_LOGDIR"], ignore_errors=True)

import pytest
import torch

torch.set_num_threads(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With SHIELDGYM_STRICT=1 (set by `make test`), a test skipped because an optional package is
    missing fails instead: the full install must run every test."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("SHIELDGYM_STRICT") == "1" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under SHIELDGYM_STRICT=1: {report.longrepr}"
