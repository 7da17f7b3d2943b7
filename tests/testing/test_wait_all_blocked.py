"""wait_all_threads_blocked@(): returns once every other thread is parked, before time jumps."""
from __future__ import annotations

import pytest

from .helpers import bootstrap, con, prejoining, testing


def test_returns_after_every_other_thread_has_parked():
    log = []

    @prejoining
    async def main(scope):
        event = con.Event()

        async def worker(name, steps):
            for i in range(steps):
                log.append((name, i))
                await con.idle()
            await event.wait()
            log.append((name, "done"))
        scope.start(worker, "a", 3)
        scope.start(worker, "b", 5)
        await testing.wait_all_threads_blocked()
        log.append("all blocked")
        event.set()
    bootstrap(main)
    assert log.index("all blocked") == 8
    assert sorted(log[:8], key=str) == sorted([("a", i) for i in range(3)] +
                                              [("b", i) for i in range(5)], key=str)
    assert log[9:] == [("a", "done"), ("b", "done")]


def test_returns_at_once_when_alone():
    async def main():
        await testing.wait_all_threads_blocked()
        return "ok"
    assert bootstrap(main) == "ok"


def test_returns_before_a_virtual_clock_jumps():
    @prejoining
    async def main(scope):
        clock = testing.VirtualClock().install()
        woke = []

        async def sleeper():
            await con.sleep(10)
            woke.append(clock.now())
        scope.start(sleeper)
        await testing.wait_all_threads_blocked()
        assert clock.now() == 0.0 and woke == []
        await con.sleep(20)
        assert woke == [10.0] and clock.now() == 20.0
    bootstrap(main)


def test_several_waiters_are_woken_together():
    log = []

    @prejoining
    async def main(scope):
        async def waiter(name):
            await testing.wait_all_threads_blocked()
            log.append(name)
        scope.start(waiter, "x")
        scope.start(waiter, "y")
        await con.idle()
    bootstrap(main)
    assert log == ["x", "y"]


def test_is_an_interruption_point():
    @prejoining
    async def main(scope):
        stop = []

        async def busy():
            while not stop:
                await con.idle()  # never blocks
        scope.start(busy)
        try:
            with pytest.raises(TimeoutError):
                with con.timeout(0.05):
                    await testing.wait_all_threads_blocked()
        finally:
            stop.append(True)
    bootstrap(main)


def test_deadlock_is_still_detected_without_waiters():
    async def main():
        await testing.wait_all_threads_blocked()  # installs the harness on the kernel
        await con.Event().wait()
    with pytest.raises(con.Deadlock):
        bootstrap(main)
