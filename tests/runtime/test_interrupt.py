"""Interruption (docs/spec.md §1.4): parked and running threads, level-triggered, scoped, subtree."""
from __future__ import annotations

import pytest

import conhook.api as con

from .helpers import _kernel, prejoining, run


async def fail_soon(exc=ValueError("fail")):
    await con.idle()
    raise exc


def test_parked_thread_is_woken_at_once_and_its_blocking_call_raises():
    log = []

    async def parked():
        try:
            await con.Event().wait()
        except con.Interrupted as exc:
            log.append(("interrupted", str(exc)))
            raise

    @prejoining
    async def main(scope):
        scope.start(parked)
        scope.start(fail_soon)

    with pytest.raises(ValueError):
        run(main)
    assert log == [("interrupted", "a sibling thread failed with ValueError: fail")]


def test_running_thread_raises_at_its_next_blocking_call():
    # A thread that was woken (it got what it waited for) and is interrupted before it runs
    # completes that call, and raises at its next blocking call.
    log = []
    event = con.Event()

    async def woken():
        await event.wait()
        log.append("wait returned")  # not a blocking point: nothing is raised here
        try:
            await con.idle()
        except con.Interrupted:
            log.append("idle raised")
            raise

    async def set_then_fail():
        event.set()
        raise ValueError("x")

    @prejoining
    async def main(scope):
        scope.start(woken)
        await con.idle()
        scope.start(set_then_fail)

    with pytest.raises(ValueError):
        run(main)
    assert log == ["wait returned", "idle raised"]


def test_a_thread_waiting_its_turn_after_idle_is_interrupted_there():
    log = []

    async def idler():
        try:
            await con.idle()
            await con.idle()
        except con.Interrupted:
            log.append("idle raised")
            raise

    @prejoining
    async def main(scope):
        scope.start(idler)
        scope.start(fail_soon)

    with pytest.raises(ValueError):
        run(main)
    assert log == ["idle raised"]


def test_every_blocking_call_raises_again_while_interrupted():
    raised = []

    async def stubborn():
        lock, sem, queue, event = con.Lock(), con.Semaphore(1), con.Queue(1), con.Event()
        event.set()
        queue.put_nowait("item")
        calls = [con.idle, lambda: con.sleep(0.01), lambda: con.sleep(0), event.wait,
                 lock.acquire, lock.hold, sem.acquire, queue.get, lambda: queue.put(1),
                 lambda: con.to_thread(print, end="")]
        try:
            await con.sleep(10)
        except con.Interrupted:
            pass
        for call in calls:  # none of them blocks, none completes, even if it could
            try:
                await call()
            except con.Interrupted:
                raised.append(True)
        assert not lock.locked() and sem.value == 1 and queue.qsize() == 1
        event.set()  # non-blocking calls work
        queue.get_nowait()

    @prejoining
    async def main(scope):
        scope.start(stubborn)
        scope.start(fail_soon)

    with pytest.raises(ValueError):
        run(main)
    assert len(raised) == 10


def test_not_interrupted_after_the_interrupted_leaves_its_scope():
    log = []

    async def sleeper():
        await con.sleep(10)

    @prejoining
    async def inner(scope):
        scope.start(sleeper)
        scope.start(fail_soon)
        await con.sleep(10)  # interrupted because a child failed

    async def main():
        try:
            await inner()
        except ValueError:
            log.append("inner failed")
        await con.sleep(0.001)  # the root is normal again: this blocks and returns
        await con.idle()
        log.append("normal again")

    run(main)
    assert log == ["inner failed", "normal again"]


def test_interruption_reaches_the_whole_subtree():
    log = []

    async def leaf(name):
        try:
            await con.sleep(10)
        except con.Interrupted:
            log.append(name)
            raise

    @prejoining
    async def middle(scope, name):
        scope.start(leaf, f"{name}.leaf1")
        scope.start(leaf, f"{name}.leaf2")
        await leaf(f"{name}.body")

    @prejoining
    async def main(scope):
        scope.start(middle, "a")
        scope.start(middle, "b")
        await con.sleep(0.01)
        raise KeyError("root fails")

    with pytest.raises(KeyError):
        run(main)
    assert sorted(log) == sorted(f"{m}.{x}" for m in "ab" for x in ("leaf1", "leaf2", "body"))


def test_threads_started_while_unwinding_are_interrupted_too():
    log = []

    async def late():
        try:
            await con.sleep(10)
        except con.Interrupted:
            log.append("late interrupted")
            raise

    @prejoining
    async def starter(scope):
        try:
            await con.sleep(10)
        finally:
            scope.start(late)  # starting is not a blocking call

    @prejoining
    async def main(scope):
        scope.start(starter)
        scope.start(fail_soon)

    with pytest.raises(ValueError):
        run(main)
    assert log == ["late interrupted"]


def test_waiting_for_children_is_not_an_interruption_point():
    log = []

    async def slow_cleanup():
        try:
            await con.sleep(10)
        finally:
            log.append("child cleaned up")

    @prejoining
    async def middle(scope):
        scope.start(slow_cleanup)
        # returns at once: its join waits for the child, uninterruptibly

    @prejoining
    async def main(scope):
        scope.start(middle)
        scope.start(fail_soon)

    with pytest.raises(ValueError):
        run(main)
    assert log == ["child cleaned up"]


def test_interrupted_is_a_base_exception_not_swallowed_by_except_exception():
    log = []

    async def sleeper():
        try:
            await con.sleep(10)
        except Exception:  # noqa: BLE001  (the test swallows on purpose)
            log.append("swallowed")

    @prejoining
    async def main(scope):
        scope.start(sleeper)
        scope.start(fail_soon)

    with pytest.raises(ValueError):
        run(main)
    assert issubclass(con.Interrupted, BaseException)
    assert not issubclass(con.Interrupted, Exception)
    assert log == []


def test_interruption_traceback_points_at_the_users_line():
    import traceback

    frames = []

    async def sleeper():
        try:
            await con.idle()
            await con.idle()
        except con.Interrupted as exc:
            frames.extend(traceback.extract_tb(exc.__traceback__))
            raise

    @prejoining
    async def main(scope):
        scope.start(sleeper)
        scope.start(fail_soon)

    with pytest.raises(ValueError):
        run(main)
    assert [f.name for f in frames] == ["sleeper"]


def test_no_thread_stays_registered_as_interrupted_once_its_interruption_is_over():
    # Streams test one process-wide set instead of finding their thread (``conhook._runtime.threads``): a thread
    # left in it would only cost speed, but the set must hold exactly the interrupted threads.
    from conhook._runtime.threads import interrupted_threads
    seen = []

    async def swallows():
        try:
            await con.sleep(10)
        except con.Interrupted:
            seen.append(_kernel.current_thread() in interrupted_threads)
        # returns normally, still interrupted

    async def sleeper():
        await con.sleep(10)

    @prejoining
    async def failing_scope(scope):
        scope.start(swallows)
        scope.start(sleeper)
        scope.start(fail_soon)
        await con.sleep(10)

    async def main():
        with pytest.raises(TimeoutError):
            with con.timeout(0.001):
                await con.sleep(10)
        assert not interrupted_threads  # the timeout block was left
        with pytest.raises(ValueError):
            await failing_scope()
        assert seen == [True]
        assert not interrupted_threads
        await con.idle()  # not interrupted any more: the root is normal again

    run(main)
    assert not interrupted_threads


def test_an_interrupted_program_leaves_no_thread_registered_as_interrupted():
    from conhook._runtime.threads import interrupted_threads

    async def forever():
        await con.Event().wait()

    @prejoining
    async def main(scope):
        scope.start(forever)
        await con.Event().wait()

    with pytest.raises(con.Deadlock):
        run(main)
    assert not interrupted_threads
