"""A session (``conhook._runtime.session``): one hosted kernel on a running asyncio loop whose
inputs run as its threads, with background threads that outlive them (docs/interactive.md)."""
from __future__ import annotations

import asyncio
import os
import signal

import pytest

import con
from conhook import _toplevel
from conhook._runtime.prejoin import prepare_namespace
from conhook._runtime.session import Session


class Inputs:
    """Inputs typed into one session, in one namespace."""

    def __init__(self):
        self.session = Session(asyncio.get_running_loop())
        self.ns = prepare_namespace({"con": con})

    def run(self, source, background=False):
        code = _toplevel.compile_input(source, "<input>", background=background)
        return self.session.run(_toplevel.as_function(code, self.ns))


def hosted(test):
    """Run the coroutine function `test` with an Inputs on a fresh asyncio loop, closed after."""
    def run():
        async def main():
            inputs = Inputs()
            try:
                await test(inputs)
            finally:
                await inputs.session.close()
        asyncio.run(main())
    run.__name__ = test.__name__
    return run


SERVER = """
q = con.Queue()
out = []
def server(q):
    try:
        while True:
            out.append(2 * q.get@())
    finally:
        out.append("stopped")
sibling server@(q)
"""


@hosted
async def test_background_threads_outlive_their_input_and_serve_later_inputs(inputs):
    await inputs.run(SERVER, background=True)  # returns at once: the server waits in get
    assert [t.coro.__qualname__ for t in inputs.session.background_threads()] == ["server"]
    await inputs.run("q.put@(21); con.idle@(); con.idle@()")
    assert inputs.ns["out"] == [42]
    await inputs.session.stop()
    assert inputs.ns["out"] == [42, "stopped"]
    assert inputs.session.background_threads() == []


@hosted
async def test_without_background_an_input_waits_for_its_siblings(inputs):
    await inputs.run("log = []\ndef later():\n    con.sleep@(0.01)\n    log.append(1)\nsibling later@()")
    assert inputs.ns["log"] == [1]
    assert inputs.session.background_threads() == []


@hosted
async def test_an_input_waiting_on_nothing_is_a_deadlock_and_background_threads_stay(inputs):
    await inputs.run(SERVER, background=True)
    with pytest.raises(con.Deadlock, match="no conhook thread of this input can make progress"):
        await inputs.run("con.Event().wait@()")
    await inputs.run("q.put@(1); con.idle@(); con.idle@()")  # the server still serves
    assert inputs.ns["out"] == [2]


@hosted
async def test_aio_in_an_input(inputs):
    await inputs.run("import asyncio\nx = con.aio@(asyncio.sleep(0, 'from asyncio'))")
    assert inputs.ns["x"] == "from asyncio"


def test_a_failing_background_thread_is_reported_and_touches_nothing_else(capsys):
    @hosted
    async def run(inputs):
        await inputs.run(SERVER, background=True)
        await inputs.run("def bad():\n    con.idle@()\n    raise ValueError('boom')\nsibling bad@()",
                         background=True)
        await inputs.run("con.sleep@(0.01); q.put@(5); con.idle@(); con.idle@()")
        assert inputs.ns["out"] == [10]
    run()
    err = capsys.readouterr().err
    assert "conhook: background thread bad failed:" in err
    assert 'File "<input>", line 3, in bad' in err and err.endswith("ValueError: boom\n")


@hosted
async def test_ctrl_c_interrupts_the_running_input_only(inputs):
    await inputs.run(SERVER, background=True)
    await inputs.run("unwound = []")
    asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        await inputs.run("try:\n    con.sleep@(3600)\nfinally:\n    unwound.append('input')")
    assert inputs.ns["unwound"] == ["input"]
    await inputs.run("q.put@(3); con.idle@(); con.idle@()")
    assert inputs.ns["out"] == [6]


@hosted
async def test_close_stops_the_background_threads(inputs):
    await inputs.run(SERVER, background=True)
    await inputs.session.close()
    assert inputs.ns["out"] == ["stopped"]
    with pytest.raises(RuntimeError, match="closed"):
        await inputs.run("1")


def test_no_kernel_is_current_between_inputs():
    async def main():
        inputs = Inputs()
        await inputs.run(SERVER, background=True)
        con.bootstrap(con.sleep, 0)  # an ordinary cell may still run a standalone program
        with pytest.raises(RuntimeError, match="no conhook scheduler"):
            con.tree()
        await inputs.session.close()
    asyncio.run(main())
