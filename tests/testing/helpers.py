"""Helpers for the tests of ``conhook.testing``.

Like the runtime tests, these modules reach conhook through ``importlib`` (they spell out the
compiler's expansion with ``async def``/``await`` and the reserved ``__con_`` names), so the
import hook leaves them alone.  Programs in con syntax are run in subprocesses.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys

con = importlib.import_module("conhook.api")
testing = importlib.import_module("conhook.testing")
__con__ = importlib.import_module("conhook._runtime.prejoin")
_kernel = importlib.import_module("conhook._runtime.kernel")
bootstrap = con.bootstrap

from runtime.helpers import prejoining  # noqa: E402,F401  (one copy of the expansion for all tests)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_con(tmp_path, source, env=None, timeout=60):
    """Run con `source` as a script under ``python -m conhook``; the CompletedProcess."""
    script = tmp_path / "prog.py"
    script.write_text(source, encoding="utf-8")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CONHOOK_")}
    full_env["PYTHONPATH"] = ROOT
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "conhook", str(script)], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=tmp_path)
