"""The watchdog (CONHOOK_WATCHDOG) and the warning for a dropped non-atomic call object."""
from __future__ import annotations

import gc
import threading
import time
import warnings

import conhook

from .helpers import bootstrap, con, prejoining, run_con

HOG = """\
import time
from con import bootstrap, idle

def hog(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end: pass  # one line: the watchdog's sample lands on it

def spinner():
    for _ in range(100):
        idle@()

def main():
    sibling spinner@()
    sibling hog@(0.6)

bootstrap(main)
print("finished")
"""


def test_watchdog_reports_a_thread_holding_the_scheduler(tmp_path):
    result = run_con(tmp_path, HOG, env={"CONHOOK_WATCHDOG": "0.1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "finished\n"
    err = result.stderr
    assert err.count("has held the scheduler") == 1, err
    assert "conhook watchdog: thread 'hog' has held the scheduler for" in err
    assert "(threshold 0.1 s)" in err
    # its Python stack, from the user's frames (no kernel frames) down to the busy line
    stack = err.split("Its Python stack (most recent call last):\n")[1].split("The cactus stack:")[0]
    assert "in hog" in stack and "time.monotonic() < end" in stack
    assert "conhook/_runtime/" not in stack
    # the cactus stack, with the thread that holds it drawn under main
    tree = err.split("The cactus stack:\n")[1]
    assert tree.startswith("bootstrap - main")
    assert "| hog" in tree and "| spinner" in tree
    assert "conhook watchdog: thread 'hog' let go of the scheduler after about" in err


def test_no_watchdog_report_for_a_thread_that_switches(tmp_path):
    source = """\
import time
from con import bootstrap, idle

def main():
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        idle@()    # alone in the ready queue, it runs turn after turn

bootstrap(main)
print("finished")
"""
    result = run_con(tmp_path, source, env={"CONHOOK_WATCHDOG": "0.05"})
    assert result.returncode == 0, result.stderr
    assert "watchdog" not in result.stderr


def test_no_watchdog_output_without_the_variable(tmp_path):
    result = run_con(tmp_path, HOG)
    assert result.returncode == 0 and result.stdout == "finished\n"
    assert result.stderr == ""


def test_the_watchdog_thread_ends_with_its_scheduler(monkeypatch):
    monkeypatch.setenv("CONHOOK_WATCHDOG", "0.02")

    async def main():
        await con.sleep(0.01)
        return [t for t in threading.enumerate() if t.name == "conhook watchdog"]
    watching = bootstrap(main)
    assert len(watching) == 1
    watching[0].join(timeout=5)
    assert not watching[0].is_alive()


DROPPED = """\
import warnings
warnings.simplefilter("always")
from con import bootstrap, idle

def step():
    idle@()

def main():
    step()      # forgot the @
    return "returned"

print(bootstrap(main))
"""


def test_a_dropped_call_object_is_reported_where_it_was_dropped(tmp_path):
    result = run_con(tmp_path, DROPPED)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "returned\n"
    err = result.stderr
    assert "prog.py:9: RuntimeWarning: non-atomic call step() was created but never run" in err
    assert "coroutine 'step' was never awaited" in err  # CPython's words are kept for filters
    assert "write step@(...) to run it" in err and "sibling step@(...)" in err
    assert "Set CONHOOK_DEBUG=1" in err
    assert "tracemalloc" not in err  # CPython's hint, which CONHOOK_DEBUG replaces


def test_with_conhook_debug_it_names_where_the_call_object_was_made(tmp_path):
    source = DROPPED.replace('    step()      # forgot the @\n',
                             '    kept = [step()]      # made here\n    kept.clear()\n')
    result = run_con(tmp_path, source, env={"CONHOOK_DEBUG": "1"})
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "prog.py:10: RuntimeWarning: non-atomic call step() was created but never run" in err
    created = err.split("It was created at (most recent call last):\n")[1]
    assert 'prog.py", line 9, in main' in created and "kept = [step()]" in created


def test_other_coroutines_keep_cpythons_warning():
    import conhook.api  # noqa: F401  (installs the con wording)

    # Defined outside any con module (under the pytest plugin this test module is one).
    namespace = {}
    exec("async def plain():\n    pass\n", namespace)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        namespace["plain"]()
        gc.collect()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert messages == ["coroutine 'plain' was never awaited"]


def test_dropped_call_object_compiled_in_process():
    namespace = {"__name__": "dropped_demo"}
    from conhook._runtime.prejoin import prepare_namespace
    prepare_namespace(namespace)
    exec(conhook.compile_con("import con\ndef step():\n    con.idle@()\n", "<demo>"), namespace)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        namespace["step"]()
        gc.collect()
    assert [str(w.message).split(":")[0] for w in caught] == [
        "non-atomic call step() was created but never run (coroutine 'step' was never awaited)"]


def test_watchdog_costs_no_report_when_threshold_not_reached(monkeypatch):
    monkeypatch.setenv("CONHOOK_WATCHDOG", "5")
    from conhook._runtime import diagnostics
    reports = []
    monkeypatch.setattr(diagnostics.Watchdog, "_report", lambda self, *a: reports.append(a))

    @prejoining
    async def main(scope):
        async def short_hog():
            end = time.monotonic() + 0.05
            while time.monotonic() < end:
                pass
        scope.start(short_hog)
    bootstrap(main)
    assert reports == []


def test_a_watchdog_threshold_that_is_not_a_number_is_refused(monkeypatch):
    monkeypatch.setenv("CONHOOK_WATCHDOG", "soon")

    async def main():
        pass
    import pytest
    with pytest.raises(ValueError, match="CONHOOK_WATCHDOG must be a number of seconds"):
        bootstrap(main)
