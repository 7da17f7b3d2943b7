"""gather, race, as_completed (docs/spec.md §3): results collected while prejoin's guarantees
hold (first failure unwrapped, the other calls interrupted and waited for, nothing outlives
the call)."""
from __future__ import annotations

import traceback
import warnings

import pytest

import conhook.api as con
from conhook import testing

from .helpers import prejoining, run


async def fetch(name, seconds, log):
    try:
        await con.sleep(seconds)
    except con.Interrupted:
        log.append(f"{name} interrupted")
        raise
    finally:
        log.append(f"{name} done")
    return name


async def fail(exc, seconds=0.005):
    await con.sleep(seconds)
    raise exc


def test_gather_returns_the_results_in_the_order_of_the_calls():
    log = []

    async def main():
        testing.VirtualClock().install()  # (in real time a loaded machine can swap the two)
        return await con.gather(fetch("slow", 0.02, log), fetch("fast", 0.01, log))

    assert run(main) == ["slow", "fast"]
    assert log == ["fast done", "slow done"]


def test_gather_of_nothing_is_an_empty_list():
    async def main():
        return await con.gather()
    assert run(main) == []


def test_gather_raises_the_first_failure_unwrapped_after_the_others_finished():
    log = []
    first = KeyError("first")

    async def main():
        try:
            await con.gather(fetch("slow", 10, log), fail(first))
        except KeyError as exc:
            log.append("caught")
            return exc

    assert run(main) is first
    assert log == ["slow interrupted", "slow done", "caught"]


def test_gather_keeps_later_failures_on_the_first():
    first = KeyError("first")

    async def stubborn():
        try:
            await con.sleep(10)
        finally:
            raise ValueError("while unwinding")

    async def main():
        try:
            await con.gather(stubborn(), fail(first))
        except KeyError as exc:
            return exc

    exc = run(main)
    assert exc is first
    assert [type(e) for e in exc.later_failures] == [ValueError]
    assert any("stubborn also failed: ValueError" in note for note in exc.__notes__)


def test_a_failure_shows_the_users_frames_only():
    async def main():
        try:
            await con.gather(fail(KeyError("x")))
        except KeyError as exc:
            return traceback.extract_tb(exc.__traceback__)

    names = [frame.name for frame in run(main)]
    assert names == ["main", "fail"]


def test_race_returns_the_first_result_once_the_others_were_interrupted():
    log = []

    async def main():
        result = await con.race(fetch("slow", 10, log), fetch("fast", 0.01, log),
                                fetch("slower", 20, log))
        log.append(f"won by {result}")

    run(main)
    assert log == ["fast done", "slow interrupted", "slow done", "slower interrupted",
                   "slower done", "won by fast"]


def test_race_raises_a_failure_that_comes_first():
    log = []

    async def main():
        await con.race(fetch("slow", 10, log), fail(OSError("down")))

    with pytest.raises(OSError, match="down"):
        run(main)
    assert log == ["slow interrupted", "slow done"]


def test_race_needs_a_call():
    async def main():
        await con.race()
    with pytest.raises(ValueError, match="at least one call"):
        run(main)


def test_as_completed_puts_results_as_they_finish_then_closes_the_queue():
    log = []

    @prejoining
    async def main(scope):
        testing.VirtualClock().install()  # (in real time a loaded machine can swap the two)
        results = con.Queue()
        scope.start(con.as_completed, results, fetch("slow", 0.02, log), fetch("fast", 0.01, log))
        while (name := await results.get(default=None)) is not None:
            log.append(f"got {name}")
        assert results.closed

    run(main)
    assert log == ["fast done", "got fast", "slow done", "got slow"]


def test_closing_the_queue_of_as_completed_stops_the_calls_left():
    log = []

    @prejoining
    async def main(scope):
        results = con.Queue()
        scope.start(con.as_completed, results, fetch("slow", 10, log), fetch("fast", 0.01, log))
        log.append(f"got {await results.get()}")
        results.close()

    run(main)
    assert log == ["fast done", "got fast", "slow interrupted", "slow done"]


def test_a_failing_call_of_as_completed_interrupts_the_consumer():
    log = []

    @prejoining
    async def main(scope):
        results = con.Queue()
        scope.start(con.as_completed, results, fetch("slow", 10, log), fail(KeyError("k")))
        try:
            await results.get()
        except con.Interrupted:
            log.append("consumer interrupted")
            raise

    with pytest.raises(KeyError):
        run(main)
    assert log == ["slow interrupted", "slow done", "consumer interrupted"]


def test_an_outer_timeout_interrupts_every_call_and_nothing_outlives_the_helper():
    log = []

    async def main():
        try:
            with con.timeout(0.01):
                await con.gather(fetch("a", 10, log), fetch("b", 10, log))
        except TimeoutError:
            log.append("timed out")

    run(main)
    assert log == ["a interrupted", "a done", "b interrupted", "b done", "timed out"]


def test_the_threads_are_named_after_their_calls():
    seen = []

    async def watch():
        await con.idle()
        seen.append(con.tree())

    async def main():
        await con.gather(watch(), fetch("x", 0.01, []))

    run(main)
    lines = [line.strip() for line in seen[0].splitlines()]
    assert lines == ["bootstrap - main - gather", "| watch", "| fetch - sleep"]


def test_something_not_awaitable_is_refused_and_the_calls_are_not_left_unrun():
    async def main():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            await con.gather(fetch("a", 0, []), print)

    with pytest.raises(TypeError, match="call objects such as f"):
        run(main)


def test_as_completed_of_nothing_closes_the_queue_at_once():
    @prejoining
    async def main(scope):
        results = con.Queue()
        scope.start(con.as_completed, results)
        return await results.get(default="closed")

    assert run(main) == "closed"


def test_a_delivery_waiting_on_a_full_queue_stops_when_the_consumer_closes_it():
    log = []

    @prejoining
    async def main(scope):
        results = con.Queue(1)
        scope.start(con.as_completed, results, fetch("a", 0, log), fetch("b", 0, log),
                    fetch("slow", 10, log))
        await con.sleep(0.01)  # a's result is in the queue, b's waits for room
        log.append(f"got {await results.get()}")
        results.close()

    run(main)
    assert log == ["a done", "b done", "got a", "slow interrupted", "slow done"]
