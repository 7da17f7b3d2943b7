"""Every system test runs on every readiness backend the machine has, and the process tests
also with the waiting OS thread that stands in for a pidfd where there is none."""
from __future__ import annotations

import pytest

from conhook._runtime.backends import available


@pytest.fixture(params=available(), autouse=True)
def backend(request, monkeypatch):
    """Run the test with CONHOOK_BACKEND forced to each available backend in turn
    (subprocesses started by the test inherit it)."""
    monkeypatch.setenv("CONHOOK_BACKEND", request.param)
    return request.param
