"""The cactus stack (docs/spec.md §1.7): tree() and the SIGUSR1 dump."""
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest


from .helpers import __con__, con, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def read(event):
    await event.wait()


async def write(event):
    await event.wait()


async def echo(event, writing):
    if writing:
        await write(event)
    else:
        await read(event)


async def accept(event):
    await event.wait()


def test_tree_draws_the_proposals_echo_server():
    event = con.Event()
    drawn = []

    async def observer():
        await con.idle()
        drawn.append(con.tree())
        event.set()

    async def main():  # the expansion of: sibling echo@(...) three times, then accept@()
        __con_scope__ = __con__.prejoin()
        try:
            __con_scope__.start(echo, event, False)
            __con_scope__.start(echo, event, False)
            __con_scope__.start(echo, event, True)
            __con_scope__.start(observer)
            await accept(event)
        except BaseException as __con_exc__:
            if await __con_scope__.failed(__con_exc__):
                raise
        finally:
            await __con_scope__.join()

    run(main)
    # The observer is running when it draws: it shows as a line of its own, without a wait.
    assert drawn[0] == textwrap.dedent("""\
        bootstrap - main - accept - wait
                         | echo - read - wait
                         | echo - read - wait
                         | echo - write - wait
                         | observer""")


def test_nested_threads_hang_under_the_frame_that_started_them():
    event = con.Event()
    drawn = []

    async def leaf():
        await con.sleep(10)

    async def middle():
        __con_scope__ = __con__.prejoin()
        try:
            __con_scope__.start(leaf)
            await event.wait()
        except BaseException as __con_exc__:
            if await __con_scope__.failed(__con_exc__):
                raise
        finally:
            await __con_scope__.join()

    async def serve():
        __con_scope__ = __con__.prejoin()
        try:
            __con_scope__.start(middle)
            await con.idle()
            await con.idle()
            drawn.append(con.tree())
            event.set()
            raise KeyError("stop")
        except BaseException as __con_exc__:
            if await __con_scope__.failed(__con_exc__):
                raise
        finally:
            await __con_scope__.join()

    async def main():
        try:
            await serve()
        except KeyError:
            pass

    run(main)
    assert drawn[0] == textwrap.dedent("""\
        bootstrap - main - serve
                                 | middle - wait
                                          | leaf - sleep""")


def test_tree_outside_a_scheduler_is_an_error():
    with pytest.raises(RuntimeError, match="no conhook scheduler"):
        con.tree()


def test_sigusr1_prints_the_cactus_stack(tmp_path):
    if not hasattr(signal, "SIGUSR1"):
        pytest.skip("no SIGUSR1 here")
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {ROOT!r})
        import conhook.api as con
        from conhook._runtime.cactus_stack import install_dump_signal

        async def napping():
            os.kill(os.getpid(), signal.SIGUSR1)
            await con.sleep(0.05)

        install_dump_signal()
        con.bootstrap(napping)
        """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "conhook: cactus stack" in proc.stderr
    assert "bootstrap - napping" in proc.stderr


WAITS = textwrap.dedent("""
    import threading
    import con

    def getter(queue):
        queue.get@()

    def putter(queue):
        queue.put@("one too many")

    def waiter(event):
        event.wait@()

    def locker(lock):
        lock.acquire@()

    def sleeper():
        con.sleep@(3600)

    def worker(release):
        con.to_thread@(release.wait)

    def start_every_wait(drawn, release):
        full = con.Queue(1)
        full.put_nowait("item")
        lock = con.Lock()
        lock.acquire@()
        sibling getter@(con.Queue())
        sibling putter@(full)
        sibling waiter@(con.Event())
        sibling locker@(lock)
        sibling sleeper@()
        sibling worker@(release)
        con.sleep@(0.1)
        drawn.append(con.tree())
        release.set()
        raise KeyError("done")

    def stuck():
        full = con.Queue(1)
        full.put_nowait("item")
        sibling getter@(con.Queue())
        sibling putter@(full)
    """)


def con_program(source):
    namespace = __con__.prepare_namespace({"__name__": "waits"})
    exec(importlib.import_module("conhook").compile_con(source, "waits.py"), namespace)
    return namespace


def test_every_wait_is_drawn_once():
    ns = con_program(WAITS)
    drawn = []
    with pytest.raises(KeyError):
        con.bootstrap(ns["start_every_wait"], drawn, threading.Event())
    assert drawn[0] == textwrap.dedent("""\
        bootstrap - start_every_wait
                                     | getter - get
                                     | putter - put
                                     | waiter - wait
                                     | locker - acquire
                                     | sleeper - sleep
                                     | worker - to_thread""")


def test_a_deadlock_message_draws_every_wait_once():
    ns = con_program(WAITS)
    with pytest.raises(con.Deadlock) as caught:
        con.bootstrap(ns["stuck"])
    assert str(caught.value).endswith(textwrap.dedent("""
        bootstrap - stuck
                          | getter - get
                          | putter - put"""))
