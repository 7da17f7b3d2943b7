"""Stress scenarios: Linux only (they read /proc); each reports its figures at the end."""
from __future__ import annotations

import json
import os
import sys

import pytest

from .helpers import FULL

FIGURES = []

if not sys.platform.startswith("linux"):
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def figure(request):
    """``figure(name, value, unit, bound)``: record a measured figure of this scenario."""
    def record(name, value, unit="", bound=""):
        entry = {"scenario": request.node.name, "figure": name, "value": value, "unit": unit,
                 "bound": bound, "size": "full" if FULL else "ci"}
        FIGURES.append(entry)
        request.node.user_properties.append((name, value))
    return record


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("conhook stress figures" + (" (full size)" if FULL else " (CI size)"))
    for f in FIGURES:
        value = f["value"]
        shown = (f"{value:,.3f}" if isinstance(value, float) else
                 f"{value:,}" if isinstance(value, int) else str(value))
        terminalreporter.write_line(f"{f['scenario']}: {f['figure']} = {shown} {f['unit']}"
                                    + (f"  (bound {f['bound']})" if f["bound"] else ""))
    out = os.environ.get("CONHOOK_STRESS_OUT")
    if out:
        with open(out, "w") as fh:
            json.dump(FIGURES, fh, indent=1)
