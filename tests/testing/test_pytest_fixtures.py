"""The fixtures of conhook.testing_fixtures, used by con tests under the conhook pytest plugin."""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap

from .helpers import ROOT

TESTS = '''
import con
from conhook.testing import wait_all_threads_blocked
from conhook.testing_fixtures import memory_streams, virtual_clock  # noqa: F401


def test_time_jumps(virtual_clock):
    con.sleep@(3600)
    assert virtual_clock.now() == 3600.0


def test_timeout_in_virtual_time(virtual_clock):
    try:
        with con.timeout(30):
            con.sleep@(10**6)
    except TimeoutError:
        assert virtual_clock.now() == 30.0
    else:
        raise AssertionError("no timeout")


def echo_once(stream):
    stream.write@(stream.read@())


def test_memory_streams(memory_streams):
    a, b = memory_streams
    sibling echo_once@(b)
    a.write@(b"ping")
    wait_all_threads_blocked@()
    assert a.read@() == b"ping"
'''


def _plugin_args():
    registered = any(ep.value == "conhook.pytest_plugin"
                     for ep in importlib.metadata.entry_points(group="pytest11"))
    return [] if registered else ["-p", "conhook.pytest_plugin"]


def test_fixtures_under_the_plugin(tmp_path):
    (tmp_path / "test_user.py").write_text(textwrap.dedent(TESTS))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONHOOK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", *_plugin_args(),
                             "-p", "no:cacheprovider", "test_user.py"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
