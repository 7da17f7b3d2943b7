"""VirtualClock: auto-jump, manual jumps, installing mid-run, workers, deadlock, uninstall."""
from __future__ import annotations

import time

import pytest

from .helpers import _kernel, bootstrap, con, prejoining, testing


def test_sleep_jumps_instantly_to_the_deadline():
    async def main():
        clock = testing.VirtualClock().install()
        start = time.monotonic()
        await con.sleep(3600)
        await con.sleep(0.5)
        return clock.now(), testing.current_time(), time.monotonic() - start
    now, current, real = bootstrap(main)
    assert now == current == 3600.5
    assert real < 5  # generous: no real hour was waited


def test_timeout_runs_out_in_virtual_time():
    async def main():
        clock = testing.VirtualClock(start=100.0).install()
        with pytest.raises(TimeoutError):
            with con.timeout(30):
                await con.sleep(10**6)
        return clock.now()
    assert bootstrap(main) == 130.0


def test_sleepers_wake_in_deadline_order_at_their_virtual_times():
    log = []

    async def sleeper(name, seconds):
        await con.sleep(seconds)
        log.append((name, testing.current_time()))

    @prejoining
    async def main(scope):
        testing.VirtualClock().install()
        for name, seconds in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0)]:
            scope.start(sleeper, name, seconds)
    bootstrap(main)
    assert log == [("a", 1.0), ("a2", 1.0), ("b", 2.0), ("c", 3.0)]


def test_no_jump_while_a_thread_is_ready():
    async def main():
        clock = testing.VirtualClock().install()
        seen = []

        async def spinner():
            for _ in range(5):
                seen.append(clock.now())
                await con.idle()

        @prejoining
        async def both(scope):
            scope.start(spinner)
            await con.sleep(1)
            seen.append(("slept", clock.now()))
        await both()
        return seen
    assert bootstrap(main) == [0.0, 0.0, 0.0, 0.0, 0.0, ("slept", 1.0)]


def test_installing_mid_run_keeps_the_remaining_time_of_pending_timers():
    @prejoining
    async def main(scope):
        woke = []

        async def early_sleeper():
            await con.sleep(1000)  # set on the monotonic clock
            woke.append(testing.current_time())
        scope.start(early_sleeper)
        await con.idle()  # it parks on its real timer
        clock = testing.VirtualClock().install()
        await con.sleep(1)
        assert clock.now() == 1.0 and not woke
        await testing.wait_all_threads_blocked()
        await con.sleep(2000)
        assert len(woke) == 1 and 999 < woke[0] < 1001
    start = time.monotonic()
    bootstrap(main)
    assert time.monotonic() - start < 5


def test_manual_clock_moves_only_when_jumped():
    async def main():
        clock = testing.VirtualClock(autojump=False).install()
        log = []

        async def sleeper():
            await con.sleep(5)
            log.append("woke")

        @prejoining
        async def both(scope):
            scope.start(sleeper)
            for _ in range(7):
                await con.idle()
                log.append(clock.now())
                clock.jump(1)
        await both()
        return log
    # The jump to 5 comes after 4.0 is logged; the timer fires in the next turn, before it runs.
    assert bootstrap(main) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, "woke", 6.0]


def test_manual_clock_with_only_timers_left_is_a_deadlock_not_a_hang():
    async def main():
        testing.VirtualClock(autojump=False).install()
        await con.sleep(1)
    with pytest.raises(con.Deadlock, match="virtual clock does not advance") as info:
        bootstrap(main)
    assert "sleep" in str(info.value)


def test_autojump_waits_for_a_worker_thread():
    async def main():
        clock = testing.VirtualClock().install()
        with con.timeout(10):  # would run out at once if the clock jumped over the worker
            value = await con.to_thread(lambda: (time.sleep(0.05), "done")[1])
        return value, clock.now()
    assert bootstrap(main) == ("done", 0.0)


def test_uninstall_gives_back_the_monotonic_clock():
    async def main():
        clock = testing.VirtualClock(start=50.0)
        with clock:
            assert _kernel.current_kernel().clock == clock.now
            await con.sleep(10)
        assert _kernel.current_kernel().clock is time.monotonic
        before = time.monotonic()
        await con.sleep(0.01)  # a real sleep again
        return clock.now(), time.monotonic() - before
    now, real = bootstrap(main)
    assert now == 60.0
    assert real >= 0.009


def test_jump_forward_only():
    clock = testing.VirtualClock()
    clock.jump(2.5)
    assert clock.now() == 2.5
    with pytest.raises(ValueError, match="only moves forward"):
        clock.jump(-1)
    with pytest.raises(ValueError):
        clock.jump(float("nan"))


def test_install_needs_a_running_scheduler():
    with pytest.raises(RuntimeError, match="no conhook scheduler"):
        testing.VirtualClock().install()


def test_current_time_is_monotonic_without_a_virtual_clock():
    async def main():
        return testing.current_time(), time.monotonic()
    mine, real = bootstrap(main)
    assert abs(mine - real) < 1


def test_virtual_clock_fixture_installs_and_removes_the_clock():
    async def main():
        fixture = testing.virtual_clock_fixture()
        clock = await fixture.__anext__()
        assert _kernel.current_kernel().clock == clock.now
        await con.sleep(7)
        assert clock.now() == 7.0
        with pytest.raises(StopAsyncIteration):
            await fixture.__anext__()
        return _kernel.current_kernel().clock
    assert bootstrap(main) is time.monotonic
