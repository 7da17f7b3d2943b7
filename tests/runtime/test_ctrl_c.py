"""Ctrl-C (docs/spec.md §1.6), in subprocesses: finally blocks ran, a bare KeyboardInterrupt, no conhook frames."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")

PRELUDE = f"""
import sys, time
sys.path.insert(0, {ROOT!r})
import conhook.api as con
from conhook._runtime import prejoin as __con__


async def start_all(*calls):  # the expansion of a function that starts each call as a sibling
    __con_scope__ = __con__.prejoin()
    try:
        for fn, *args in calls:
            __con_scope__.start(fn, *args)
        print("ready", flush=True)
    except BaseException as __con_exc__:
        if await __con_scope__.failed(__con_exc__):
            raise
    finally:
        await __con_scope__.join()
"""


def run_and_interrupt(body, signals=1, wait_for=("ready",), tmp_path=None):
    """Run PRELUDE + body, send SIGINT after each line of `wait_for` appears; return (out, err)."""
    script = tmp_path / "prog.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    out = []
    try:
        for marker in wait_for:
            while True:
                line = proc.stdout.readline()
                assert line, f"the program ended before printing {marker!r}: {proc.stderr.read()}"
                out.append(line)
                if line.strip() == marker:
                    break
            time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return "".join(out) + rest, err, proc.returncode


def assert_bare_keyboard_interrupt(err):
    lines = err.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):", err
    assert lines[-1] == "KeyboardInterrupt", err
    assert "During handling" not in err and "direct cause" not in err, err
    assert "conhook" not in err, err  # no frame of conhook's internals


def test_ctrl_c_with_threads_asleep(tmp_path):
    out, err, code = run_and_interrupt("""
        async def sleeper(name):
            try:
                await con.sleep(100)
            finally:
                print("finally", name, flush=True)

        async def main():
            await start_all((sleeper, "a"), (sleeper, "b"), (sleeper, "c"))

        try:
            con.bootstrap(main)
        finally:
            print("bootstrap left", flush=True)
        """, tmp_path=tmp_path)
    assert sorted(line for line in out.splitlines() if line.startswith("finally")) == [
        "finally a", "finally b", "finally c"]
    assert out.splitlines()[-1] == "bootstrap left"
    assert_bare_keyboard_interrupt(err)
    assert code != 0


def test_except_keyboard_interrupt_pass_works(tmp_path):
    out, err, code = run_and_interrupt("""
        async def main():
            await start_all((con.sleep, 100))

        try:
            con.bootstrap(main)
        except KeyboardInterrupt:
            print("caught", flush=True)
        """, tmp_path=tmp_path)
    assert out.splitlines()[-1] == "caught"
    assert err == "" and code == 0


def test_ctrl_c_with_a_thread_busy_in_atomic_code(tmp_path):
    out, err, code = run_and_interrupt("""
        async def busy():
            try:
                print("busy", flush=True)
                while True:
                    pass
            finally:
                print("finally busy", flush=True)

        async def sleeper():
            try:
                await con.sleep(100)
            finally:
                print("finally sleeper", flush=True)

        async def main():
            await start_all((sleeper,), (busy,))

        con.bootstrap(main)
        """, wait_for=("busy",), tmp_path=tmp_path)
    assert {"finally busy", "finally sleeper"} <= set(out.splitlines())
    assert_bare_keyboard_interrupt(err)
    assert "in busy" in err  # the traceback shows where the program was busy
    assert code != 0


def test_second_ctrl_c_while_unwinding_raises_at_once(tmp_path):
    out, err, code = run_and_interrupt("""
        async def slow_cleanup():
            try:
                await con.sleep(100)
            finally:
                print("unwinding", flush=True)
                time.sleep(100)  # atomic and slow: only a second Ctrl-C stops it

        async def main():
            await start_all((slow_cleanup,))

        con.bootstrap(main)
        """, wait_for=("ready", "unwinding"), tmp_path=tmp_path)
    assert_bare_keyboard_interrupt(err)
    assert code != 0


def test_second_ctrl_c_closes_the_threads_started_from_outside_too(tmp_path):
    """A token's thread is closed where it waits, as the root's threads are, so the OS thread
    waiting in from_thread gets its answer and the process can exit."""
    out, err, code = run_and_interrupt("""
        import threading

        async def forever(started):
            started.set()
            try:
                await con.sleep(100)
            finally:
                print("token thread closed", flush=True)

        def os_thread(token, started):
            try:
                con.from_thread(forever, started, token=token)
            except con.Interrupted as exc:
                print("OS thread:", exc, flush=True)

        async def main():
            started = con.Event()
            threading.Thread(target=os_thread, args=(con.current_token(), started)).start()
            await started.wait()
            print("ready", flush=True)
            try:
                await con.sleep(100)
            finally:
                print("unwinding", flush=True)
                time.sleep(100)  # atomic and slow: only a second Ctrl-C stops it

        con.bootstrap(main)
        """, wait_for=("ready", "unwinding"), tmp_path=tmp_path)
    assert_bare_keyboard_interrupt(err)
    assert "token thread closed\nOS thread: the scheduler was stopped\n" in out, out


def test_signals_wake_the_poll_while_bootstrap_runs():
    """A Ctrl-C landing just before the poll blocks must wake it: the signal wake-up fd is
    the scheduler's own while it runs, and is given back afterwards."""
    import conhook.api as con

    def current_wakeup_fd():
        fd = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(fd)
        return fd

    before = current_wakeup_fd()
    seen = []

    async def main():
        seen.append(current_wakeup_fd())
        await con.sleep(0)

    con.bootstrap(main)
    assert seen[0] not in (-1, before)
    assert current_wakeup_fd() == before
