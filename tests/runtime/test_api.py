"""The con API (docs/spec.md §3, without the network): every name is there and documented."""
from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import conhook.api as con

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {"bootstrap", "idle", "sleep", "timeout", "Interrupted", "Deadlock", "Event", "Lock",
            "Semaphore", "Queue", "QueueEmpty", "QueueFull", "QueueClosed",
            "gather", "race", "as_completed", "to_thread", "tree", "run_process", "open_process",
            "Process", "signals"}


def test_every_name_is_exported_and_documented():
    assert EXPECTED <= set(con.__all__)
    for name in con.__all__:
        assert inspect.getdoc(getattr(con, name)), name


def test_exception_hierarchy():
    assert issubclass(con.Interrupted, BaseException) and not issubclass(con.Interrupted, Exception)
    assert issubclass(con.Deadlock, RuntimeError)


def test_blocking_methods_are_documented():
    for cls, names in ((con.Event, ["set", "is_set", "wait"]),
                       (con.Lock, ["acquire", "release", "hold", "locked"]),
                       (con.Semaphore, ["acquire", "release", "hold"]),
                       (con.Queue, ["put", "get", "put_nowait", "get_nowait", "qsize", "close", "wait_closed"])):
        for name in names:
            assert inspect.getdoc(getattr(cls, name)), f"{cls.__name__}.{name}"


def test_dir_lists_the_api_and_nothing_else():
    # (Under pytest the module also has assertion rewriting's '@py_builtins': not identifiers.)
    public = [name for name in dir(con) if not name.startswith("_") and name.isidentifier()]
    assert public == sorted(con.__all__)


def test_idle_has_a_signature():
    assert inspect.signature(con.idle) == inspect.Signature()


def test_tree_names_an_ordinary_root_function():
    def plain():
        return con.tree()
    assert con.bootstrap(plain) == "bootstrap - plain"


def test_the_benchmarks_help_runs_no_benchmark():
    for tool in ("bench_compile.py", "bench_runtime.py"):
        result = subprocess.run([sys.executable, str(ROOT / "tools" / tool), "--help"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: python tools/{tool} [-h] [--quick]")
        assert "conhook at" not in result.stdout and "switch" not in result.stdout.split("\n\n")[0]
