"""sleep and timeout blocks, including nested timeouts."""
from __future__ import annotations

import time

import pytest

import conhook.api as con

from .helpers import prejoining, run


def test_sleep_orders_threads_by_deadline():
    log = []

    async def sleeper(name, seconds):
        await con.sleep(seconds)
        log.append(name)

    @prejoining
    async def main(scope):
        scope.start(sleeper, "slow", 0.03)
        scope.start(sleeper, "fast", 0.01)
        scope.start(sleeper, "zero", 0)

    run(main)
    assert log == ["zero", "fast", "slow"]


def test_sleep_rejects_nan():
    async def main():
        await con.sleep(float("nan"))
    with pytest.raises(ValueError):
        run(main)


def test_timeout_interrupts_the_body_and_raises_timeout_error():
    log = []

    async def main():
        try:
            with con.timeout(0.01):
                try:
                    await con.sleep(10)
                except con.Interrupted:
                    log.append("interrupted")
                    raise
        except TimeoutError as exc:
            log.append(str(exc))
        await con.sleep(0.001)  # normal again
        log.append("after")

    run(main)
    assert log == ["interrupted", "timed out after 0.01 s", "after"]


def test_timeout_that_does_not_expire_changes_nothing():
    async def main():
        with con.timeout(10):
            await con.sleep(0.001)
        return "done"
    assert run(main) == "done"


def test_timeout_interrupts_threads_started_inside_the_block():
    log = []

    async def sleeper():
        try:
            await con.sleep(10)
        except con.Interrupted:
            log.append("child interrupted")
            raise

    @prejoining
    async def worker(scope):
        scope.start(sleeper)
        await con.sleep(10)

    async def main():
        with pytest.raises(TimeoutError):
            with con.timeout(0.01):
                await worker()
        log.append("after")

    run(main)
    assert log == ["child interrupted", "after"]


def test_inner_timeout_expires_first():
    log = []

    async def main():
        with con.timeout(10):
            try:
                with con.timeout(0.01):
                    await con.sleep(10)
            except TimeoutError:
                log.append("inner timed out")
            await con.sleep(0.001)
            log.append("outer still fine")

    run(main)
    assert log == ["inner timed out", "outer still fine"]


def test_outer_timeout_expires_first_and_wins():
    log = []

    async def main():
        try:
            with con.timeout(0.01):
                try:
                    with con.timeout(10):
                        await con.sleep(10)
                except TimeoutError:
                    log.append("inner must not claim it")
                except con.Interrupted:
                    log.append("inner block let Interrupted through")
                    raise
        except TimeoutError:
            log.append("outer timed out")

    run(main)
    assert log == ["inner block let Interrupted through", "outer timed out"]


def test_outer_timeout_expiring_while_inner_unwinds_wins():
    # The inner timeout fires first; while the block waits for a child's slow (atomic)
    # cleanup, the outer one fires too.  The outer one is further out, so it wins.
    log = []

    async def slow_cleanup():
        try:
            await con.sleep(10)
        finally:
            time.sleep(0.03)  # noqa: CON201 (atomic work past the outer deadline)

    @prejoining
    async def work(scope):
        scope.start(slow_cleanup)
        await con.sleep(10)

    async def main():
        try:
            with con.timeout(0.02):
                try:
                    with con.timeout(0.01):
                        await work()
                except TimeoutError:
                    log.append("inner timed out")
                except con.Interrupted:
                    log.append("still interrupted")
                    raise
        except TimeoutError:
            log.append("outer timed out")

    run(main)
    assert log == ["still interrupted", "outer timed out"]


def test_timeout_when_the_body_swallows_the_interruption_still_raises():
    async def main():
        with con.timeout(0.01):
            try:
                await con.sleep(10)
            except con.Interrupted:
                pass
    with pytest.raises(TimeoutError):
        run(main)


def test_other_exceptions_pass_through_a_fired_timeout():
    async def main():
        with con.timeout(0.01):
            try:
                await con.sleep(10)
            except con.Interrupted:
                raise KeyError("mine")
    with pytest.raises(KeyError):
        run(main)


def test_many_cancelled_timeouts_do_not_accumulate():
    async def main():
        for _ in range(1000):
            with con.timeout(100):
                await con.idle()
        from conhook._runtime.kernel import current_kernel
        return len(current_kernel().timers)
    assert run(main) <= 200


def test_timeout_is_an_ordinary_context_manager_that_never_blocks():
    async def main():
        t = con.timeout(1)
        assert hasattr(t, "__enter__") and hasattr(t, "__exit__")
        assert not hasattr(t, "__aenter__")
        with t:
            pass
        return True
    assert run(main)
