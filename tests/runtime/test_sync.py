"""Event, Lock, Semaphore, Queue, to_thread: FIFO wake-up, hand-over, interruption."""
from __future__ import annotations

import threading
import time

import pytest

import conhook.api as con

from .helpers import prejoining, run


def test_event_wakes_all_waiters_in_fifo_order():
    log = []
    event = con.Event()

    async def waiter(name):
        await event.wait()
        log.append(name)

    @prejoining
    async def main(scope):
        for name in "abc":
            scope.start(waiter, name)
        await con.idle()
        assert not event.is_set()
        log.append("set")
        event.set()
        assert event.is_set()
        await event.wait()  # set: returns at once
        log.append("main")

    run(main)
    assert log == ["set", "main", "a", "b", "c"]  # a set event's wait does not switch


def test_lock_is_fifo_and_hands_over_without_barging():
    log = []
    lock = con.Lock()

    async def user(name):
        with await lock.hold():
            log.append(f"{name} in")
            await con.idle()
            log.append(f"{name} out")

    @prejoining
    async def main(scope):
        for name in "abc":
            scope.start(user, name)

    run(main)
    assert log == ["a in", "a out", "b in", "b out", "c in", "c out"]


def test_lock_acquire_release_and_misuse():
    async def main():
        lock = con.Lock()
        await lock.acquire()
        assert lock.locked()
        with pytest.raises(RuntimeError, match="not reentrant"):
            await lock.acquire()
        lock.release()
        assert not lock.locked()
        with pytest.raises(RuntimeError, match="does not hold"):
            lock.release()
        return repr(lock)
    assert "unlocked" in run(main)


def test_interrupted_lock_waiter_leaves_the_queue():
    log = []
    lock = con.Lock()

    async def holder():
        await lock.acquire()
        await con.sleep(0.02)
        lock.release()

    async def impatient():
        try:
            with con.timeout(0.005):
                await lock.acquire()
        except TimeoutError:
            log.append("gave up")

    async def patient():
        with await lock.hold():
            log.append("patient got it")

    @prejoining
    async def main(scope):
        scope.start(holder)
        scope.start(impatient)
        scope.start(patient)

    run(main)
    assert log == ["gave up", "patient got it"]


def test_semaphore_limits_concurrency():
    sem = con.Semaphore(2)
    inside = []
    peak = []

    async def user(i):
        with await sem.hold():
            inside.append(i)
            peak.append(len(inside))
            await con.sleep(0.001)
            inside.remove(i)

    @prejoining
    async def main(scope):
        for i in range(6):
            scope.start(user, i)

    run(main)
    assert max(peak) == 2
    assert sem.value == 2
    with pytest.raises(ValueError):
        con.Semaphore(-1)


def test_semaphore_fifo_order():
    sem = con.Semaphore(0)
    log = []

    async def taker(name):
        await sem.acquire()
        log.append(name)

    @prejoining
    async def main(scope):
        for name in "xyz":
            scope.start(taker, name)
        await con.idle()
        for _ in range(3):
            sem.release()

    run(main)
    assert log == ["x", "y", "z"]


def test_queue_bounded_put_waits_and_order_is_fifo():
    log = []
    queue = con.Queue(2)

    async def producer():
        for i in range(5):
            await queue.put(i)
            log.append(f"put {i}")

    async def consumer():
        for _ in range(5):
            await con.idle()
            item = await queue.get()
            log.append(f"got {item}")

    @prejoining
    async def main(scope):
        scope.start(producer)
        scope.start(consumer)

    run(main)
    assert [x for x in log if x.startswith("got")] == [f"got {i}" for i in range(5)]
    assert log[:2] == ["put 0", "put 1"]  # then the producer waits: the queue is full
    assert log.index("put 2") > log.index("got 0")


def test_queue_hands_items_to_waiting_getters_in_order():
    queue = con.Queue()
    log = []

    async def getter(name):
        log.append((name, await queue.get()))

    @prejoining
    async def main(scope):
        for name in "ab":
            scope.start(getter, name)
        await con.idle()
        queue.put_nowait(1)
        await queue.put(2)

    run(main)
    assert log == [("a", 1), ("b", 2)]


def test_getters_interrupted_out_of_order_leave_the_rest_in_fifo_order():
    queue = con.Queue()
    log = []
    # They time out in this order, leaving from the middle, the back, the middle, the back
    # again and the front of the line.
    leaving = {4: 0.01, 6: 0.02, 1: 0.03, 5: 0.04, 0: 0.05}

    async def getter(number):
        try:
            with con.timeout(leaving.get(number, 60)):
                log.append((number, await queue.get()))
        except TimeoutError:
            log.append((number, "left"))

    @prejoining
    async def main(scope):
        for number in range(7):
            scope.start(getter, number)
        await con.sleep(0.1)
        for item in "xy":
            await queue.put(item)

    run(main)
    assert log == [(4, "left"), (6, "left"), (1, "left"), (5, "left"), (0, "left"),
                   (2, "x"), (3, "y")]


def test_queue_nowait_variants():
    async def main():
        queue = con.Queue(1)
        queue.put_nowait("x")
        assert queue.qsize() == 1
        with pytest.raises(con.QueueFull):
            queue.put_nowait("y")
        assert queue.get_nowait() == "x"
        with pytest.raises(con.QueueEmpty):
            queue.get_nowait()
        return True
    assert run(main)


def test_interrupted_getter_loses_nothing():
    queue = con.Queue()

    async def getter():
        with con.timeout(0.005):
            await queue.get()

    async def main():
        try:
            await getter()
        except TimeoutError:
            pass
        queue.put_nowait("kept")
        return await queue.get()

    assert run(main) == "kept"


def test_interrupted_putter_does_not_enqueue():
    queue = con.Queue(1)

    async def main():
        await queue.put("a")
        try:
            with con.timeout(0.005):
                await queue.put("b")
        except TimeoutError:
            pass
        return queue.qsize(), queue.get_nowait()

    assert run(main) == (1, "a")


def test_to_thread_returns_the_value_and_raises_the_exception():
    log = []

    def blocking(x):
        time.sleep(0.01)
        return x * 2, threading.get_ident()

    def failing():
        raise KeyError("in worker")

    async def ticker():
        for _ in range(3):
            await con.sleep(0.001)
            log.append("tick")

    @prejoining
    async def main(scope):
        scope.start(ticker)
        value, ident = await con.to_thread(blocking, 21)
        with pytest.raises(KeyError):
            await con.to_thread(failing)
        return value, ident

    value, ident = run(main)
    assert value == 42 and ident != threading.get_ident()
    assert log == ["tick"] * 3  # other threads ran while the caller was parked


def test_interrupted_to_thread_does_not_wait_for_the_worker():
    release = threading.Event()
    finished = threading.Event()

    def slow():
        release.wait(120)  # generous: a loaded machine must not make this fail
        finished.set()
        return "dropped"

    async def main():
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            with con.timeout(0.01):
                await con.to_thread(slow)
        elapsed = time.monotonic() - start
        release.set()
        await con.to_thread(finished.wait, 5)  # the dropped result is handled safely
        return elapsed

    assert run(main) < 4


def test_a_worker_that_outlives_bootstrap_finishes_harmlessly():
    release = threading.Event()
    finished = threading.Event()
    errors = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args)

    started = threading.Event()

    def slow():
        started.set()
        release.wait(120)  # generous: a loaded machine must not make this fail
        finished.set()

    class Stop(Exception):
        pass

    async def stop_once_started():  # (a call interrupted before it started would be skipped)
        while not started.is_set():
            await con.sleep(0.001)
        raise Stop

    @prejoining
    async def main(scope):
        scope.start(stop_once_started)
        await con.to_thread(slow)

    try:
        with pytest.raises(Stop):
            run(main)  # returns although the worker still runs
        assert not finished.is_set()
        release.set()
        assert finished.wait(120)
        time.sleep(0.05)  # let it post its (dropped) result to the finished scheduler
    finally:
        threading.excepthook = previous
    assert errors == []


def test_to_thread_runs_after_a_full_pool_has_drained_and_its_workers_left(monkeypatch):
    # More calls than workers: the last one queues.  Once all have finished and every worker
    # has left on its idle timeout, a new call must start a worker, not wait for a gone one.
    from conhook._runtime import worker_threads
    monkeypatch.setattr(worker_threads, "IDLE_SECONDS", 0.05)
    release = threading.Event()
    full = worker_threads.MAX_WORKERS

    def workers():
        return [t for t in threading.enumerate() if t.name == "conhook to_thread worker"]

    @prejoining
    async def fill(scope):
        con.current_default_thread_limiter().total_tokens = full + 1  # (40 would hold them)
        for _ in range(full + 1):
            scope.start(con.to_thread, release.wait)
        await con.sleep(0.05)
        release.set()

    async def later():
        deadline = time.monotonic() + 30
        while workers() and time.monotonic() < deadline:
            await con.sleep(0.02)
        assert not workers()
        with con.timeout(5):
            return await con.to_thread(lambda: "ran")

    run(fill)
    assert run(later) == "ran"
