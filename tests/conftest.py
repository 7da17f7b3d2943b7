"""Suite-wide: the ``version_independent`` marker, and the collected suite kept out of the
garbage collector's scans.

A test marked ``@pytest.mark.version_independent`` checks what does not depend on the Python
running it: an external tool's run (black or pyright on text conhook made, whose conhook side
another test checks on every Python; ruff over the plain Python files; bash over the CI script
with stand-ins).  It runs everywhere by default.  CI (``.ci/run``) sets
``CONHOOK_VERSION_INDEPENDENT_ON`` to one version (``3.11``) for every Python it tests, and the
marked tests are skipped on the others, with a reason naming where they ran.

What collection built (every test module and its ~2,000 items) lives until the run ends: it is
frozen (``gc.freeze``), so that the garbage collector no longer walks it, in a test's own
``gc.collect()`` (a test that checks what a collection frees, or a fixture that makes an unclosed
socket's ResourceWarning appear) or in the collections Python starts by itself.  Objects made
later, by the tests, are collected as before.
"""
from __future__ import annotations

import gc
import os
import re
import sys

import pytest

ENVIRONMENT = "CONHOOK_VERSION_INDEPENDENT_ON"


def pytest_collection_modifyitems(config, items):
    wanted = os.environ.get(ENVIRONMENT, "").strip()
    if wanted and not re.fullmatch(r"3\.\d+", wanted):  # (a typo would skip them everywhere)
        raise pytest.UsageError(f"{ENVIRONMENT}={wanted!r}: give a Python version such as 3.11, or unset it")
    running = "%d.%d" % sys.version_info[:2]
    if not wanted or wanted == running:
        return
    skip = pytest.mark.skip(reason=f"version-independent: runs on Python {wanted} only "
                                   f"({ENVIRONMENT}={wanted}, as .ci/run sets it)")
    for item in items:
        if item.get_closest_marker("version_independent"):
            item.add_marker(skip)


def pytest_collection_finish(session):
    gc.collect()  # (what is garbage already is freed, not frozen)
    gc.freeze()
