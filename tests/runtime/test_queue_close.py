"""Closing a Queue (docs/spec.md §3): puts refused, the rest drained, then QueueClosed or the
getter's default; waiting getters and putters woken."""
from __future__ import annotations

import pytest

import conhook.api as con

from .helpers import prejoining, run


def test_get_drains_what_is_left_then_raises():
    async def main():
        queue = con.Queue()
        for i in range(3):
            await queue.put(i)
        queue.close()
        assert queue.closed
        got = [await queue.get() for _ in range(3)]
        with pytest.raises(con.QueueClosed):
            await queue.get()
        with pytest.raises(con.QueueClosed):
            queue.get_nowait()
        return got

    assert run(main) == [0, 1, 2]


def test_put_after_close_raises_and_adds_nothing():
    async def main():
        queue = con.Queue()
        await queue.put("kept")
        queue.close()
        queue.close()  # again: nothing
        with pytest.raises(con.QueueClosed, match="closed Queue"):
            await queue.put("late")
        with pytest.raises(con.QueueClosed):
            queue.put_nowait("late")
        return queue.qsize(), queue.get_nowait()

    assert run(main) == (1, "kept")


def test_waiting_getters_are_woken_in_order_with_their_default_or_the_error():
    log = []
    queue = con.Queue()

    async def getter(name, **default):
        try:
            log.append((name, await queue.get(**default)))
        except con.QueueClosed:
            log.append((name, "closed"))

    @prejoining
    async def main(scope):
        scope.start(getter, "a")
        scope.start(getter, "b", default="end")
        await con.idle()
        queue.close()

    run(main)
    assert log == [("a", "closed"), ("b", "end")]


def test_putters_waiting_on_a_full_queue_are_refused_and_their_items_dropped():
    log = []
    queue = con.Queue(1)

    async def putter(item):
        try:
            await queue.put(item)
            log.append(("put", item))
        except con.QueueClosed:
            log.append(("refused", item))

    @prejoining
    async def main(scope):
        await queue.put("first")
        scope.start(putter, "second")
        await con.idle()
        queue.close()
        await con.idle()
        log.append(("left", [await queue.get(default=None) for _ in range(2)]))

    run(main)
    assert log == [("refused", "second"), ("left", ["first", None])]


def test_the_consumer_loop_takes_every_item_until_close():
    async def producer(queue):
        for i in range(5):
            await queue.put(i)
        queue.close()

    async def consumer(queue, out):
        while (item := await queue.get(default=None)) is not None:
            out.append(item)

    @prejoining
    async def main(scope):
        queue, out = con.Queue(2), []
        scope.start(consumer, queue, out)
        scope.start(producer, queue)
        return out

    assert run(main) == [0, 1, 2, 3, 4]


def test_an_interrupted_get_on_a_closed_queue_raises_interrupted_and_leaves_the_items():
    log = []

    async def main():
        queue = con.Queue()
        queue.put_nowait("x")
        queue.close()
        try:
            with con.timeout(0.001):
                try:
                    await con.sleep(1)
                finally:
                    try:
                        await queue.get()
                    except con.Interrupted:
                        log.append("interrupted")
        except TimeoutError:
            pass
        return queue.qsize()

    assert run(main) == 1
    assert log == ["interrupted"]


def test_close_outside_a_scheduler_with_no_waiters():
    queue = con.Queue()
    queue.put_nowait(1)
    queue.close()
    assert queue.get_nowait() == 1
    assert "closed" in repr(queue)


def test_wait_closed_returns_once_the_queue_is_closed():
    log = []
    queue = con.Queue()

    async def producer():
        await queue.wait_closed()
        log.append("producer saw close")

    @prejoining
    async def main(scope):
        scope.start(producer)
        await con.idle()
        log.append("closing")
        queue.close()
        await queue.wait_closed()  # closed: at once
        log.append("main")

    run(main)
    assert log == ["closing", "main", "producer saw close"]
