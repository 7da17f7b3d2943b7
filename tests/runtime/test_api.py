"""The con API (docs/spec.md §3, without the network): every name is there and documented."""
from __future__ import annotations

import inspect

import conhook.api as con

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
