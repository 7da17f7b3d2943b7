"""Helpers for the hosted kernel's tests: each runs on every host loop this Python has."""
from __future__ import annotations

import importlib.util

import pytest

HOST_LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(
    importlib.util.find_spec("uvloop") is None, reason="uvloop has no wheel for this Python"))]


@pytest.fixture(params=HOST_LOOPS)
def host_loop(request):
    """The host loop's name, for con.bootstrap(main, loop=...)."""
    return request.param
