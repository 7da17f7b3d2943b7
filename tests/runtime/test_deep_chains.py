"""Chains of threads, each started by the one before, 10,000 deep (issue 12, item 2).

A crawler or a pipeline whose every thread starts the next as a sibling: a failure at either
end, Ctrl-C, a deadlock and ``con.tree()`` must work at any depth memory allows (no
RecursionError from the runtime), every ``finally`` must run, and a failure's journey up the
chain must cost time linear in its depth.  The programs are con source, compiled as
``python -m conhook`` compiles them.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import conhook
from conhook._runtime import kernel as kernel_module
from conhook._runtime.prejoin import prepare_namespace

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPTH = 10_000

CHAIN = """
import con

finally_ran = []

def link(n, end):
    try:
        if n:
            sibling link@(n - 1, end)
        else:
            end@()
    finally:
        finally_ran.append(n)
"""


def program(source=CHAIN, **names):
    namespace = prepare_namespace({"__name__": "chain"})
    exec(conhook.compile_con(textwrap.dedent(source), "chain.py"), namespace)
    namespace.update(names)
    return namespace


def test_a_failure_at_the_end_travels_up_the_whole_chain():
    async def fail():
        raise KeyError("the end")

    ns = program()
    with pytest.raises(KeyError, match="the end") as caught:
        ns["con"].bootstrap(ns["link"], DEPTH, fail)
    assert sorted(ns["finally_ran"]) == list(range(DEPTH + 1))
    frames = [entry.name for entry in caught.traceback]
    assert frames.count("link") == DEPTH + 1 and frames[-1] == "fail"


def test_a_failure_at_the_top_interrupts_the_whole_chain():
    ns = program(CHAIN + textwrap.dedent("""
        def main(depth):
            bottom = con.Event()
            sibling link@(depth, lambda: reached(bottom))
            bottom.wait@()
            raise ValueError("the top")

        def reached(bottom):
            bottom.set()
            con.sleep@(3600)
        """))
    with pytest.raises(ValueError, match="the top"):
        ns["con"].bootstrap(ns["main"], DEPTH)
    assert sorted(ns["finally_ran"]) == list(range(DEPTH + 1))


def test_a_deadlock_at_the_end_is_reported_with_the_chain_drawn_once():
    ns = program()
    con = ns["con"]
    never = con.Event()

    async def stuck():
        await never.wait()

    with pytest.raises(con.Deadlock) as caught:
        con.bootstrap(ns["link"], DEPTH, stuck)
    assert sorted(ns["finally_ran"]) == list(range(DEPTH + 1))
    # The root, then DEPTH - 1 identical lines (3 drawn, the rest counted), then the last
    # link, in the call that waits.
    drawing = str(caught.value).split("The threads and where they wait:\n")[1]
    assert drawing == textwrap.dedent(f"""\
        bootstrap - link
                         | link
                                | link
                                       | link
                                       [previous line repeated {DEPTH - 4:,} more times, each started by the one above]
                                              | link - stuck - wait""")


def test_tree_draws_a_deep_chain_of_unlike_lines_in_linear_space():
    # Two functions in turn: no run of identical lines to fold, so the drawing goes on
    # from the left margin each time it has gone too far right.
    ns = program("""
        import con

        drawn = []

        def ping(n, done):
            if n:
                sibling pong@(n - 1, done)
            else:
                drawn.append(con.tree())
                done.set()
            done.wait@()

        def pong(n, done):
            sibling ping@(n - 1, done)
        """)
    ns["con"].bootstrap(ns["ping"], DEPTH, ns["con"].Event())
    lines = ns["drawn"][0].splitlines()
    assert lines[0] == "bootstrap - ping - wait"
    assert [line.strip() for line in lines if "|" in line] == (
        ["| pong", "| ping - wait"] * (DEPTH // 2))[:-1] + ["| ping"]
    assert max(map(len, lines)) < 120
    margin = [line for line in lines if line.startswith("[")]
    assert margin and all(line.startswith("[the threads below hang off the line") for line in margin)


def test_failure_propagation_walks_each_traceback_entry_a_bounded_number_of_times(monkeypatch):
    # Linear, not quadratic: stripping conhook's frames as the failure leaves each thread
    # looks only at what that thread added (counted, not timed).
    looked_at = []
    internal = kernel_module._internal
    monkeypatch.setattr(kernel_module, "_internal", lambda tb: looked_at.append(tb) or internal(tb))

    async def fail():
        raise KeyError("the end")

    ns = program()
    with pytest.raises(KeyError):
        ns["con"].bootstrap(ns["link"], 3000, fail)
    assert len(looked_at) < 10 * 3000


def test_ctrl_c_unwinds_a_deep_chain_and_runs_every_finally(tmp_path):
    if sys.platform == "win32":
        pytest.skip("SIGINT to a child process")
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        import con

        DEPTH = {DEPTH}
        unwound = 0

        def link(n):
            global unwound
            try:
                if n:
                    sibling link@(n - 1)
                else:
                    print("ready", flush=True)
                con.sleep@(3600)
            finally:
                unwound += 1

        try:
            con.bootstrap(link, DEPTH)
        finally:
            print("finally blocks run:", unwound, flush=True)
        """))
    proc = subprocess.Popen([sys.executable, "-m", "conhook", str(script)], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.2)  # till the last link parks: a Ctrl-C in user code fails that thread
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out == f"finally blocks run: {DEPTH + 1}\n"
    assert err.splitlines()[-1] == "KeyboardInterrupt", err
    assert "RecursionError" not in err and proc.returncode == -signal.SIGINT
