"""The scheduler: FIFO order, idle fairness, bootstrap, foreign awaitables, I/O waits, deadlock."""
from __future__ import annotations

import asyncio
import contextvars
import os
import socket
import types

import pytest


from .helpers import __con__, _io, _kernel, _threads, _traps, con, prejoining, run


def test_bootstrap_returns_the_value():
    async def main(a, b):
        await con.idle()
        return a + b
    assert run(main, 2, 3) == 5


def test_bootstrap_runs_an_ordinary_function_too():
    def main(x):
        return x * 2
    assert run(main, 21) == 42


def test_bootstrap_raises_the_exception_unchanged():
    class Boom(Exception):
        pass
    async def main():
        await con.idle()
        raise Boom("x")
    with pytest.raises(Boom) as info:
        run(main)
    assert str(info.value) == "x"


def test_nested_bootstrap_is_refused():
    async def main():
        def inner():
            return None
        with pytest.raises(RuntimeError, match="already running"):
            con.bootstrap(inner)
        return "ok"
    assert run(main) == "ok"


def test_fifo_order_and_no_switch_on_start():
    log = []

    async def worker(name, n):
        for i in range(n):
            log.append((name, i))
            await con.idle()

    @prejoining
    async def main(scope):
        for name in "abc":
            scope.start(worker, name, 2)
        log.append("started")  # starting does not switch
        await con.idle()
        log.append("main resumed")

    run(main)
    assert log == ["started", ("a", 0), ("b", 0), ("c", 0), "main resumed",
                   ("a", 1), ("b", 1), ("c", 1)]


def test_idle_lets_every_other_ready_thread_run_once():
    log = []

    async def spinner(name):
        for _ in range(3):
            log.append(name)
            await con.idle()

    @prejoining
    async def main(scope):
        scope.start(spinner, "x")
        scope.start(spinner, "y")
        for _ in range(3):
            await con.idle()
            log.append("main")

    run(main)
    assert log == ["x", "y", "main", "x", "y", "main", "x", "y", "main"]


def test_idle_polls_io_before_it_resumes():
    log = []
    a, b = socket.socketpair()

    async def reader():
        await _io.wait_readable(a)
        log.append("readable")

    @prejoining
    async def main(scope):
        scope.start(reader)
        await con.idle()  # reader parks
        b.send(b"x")
        log.append("sent")
        await con.idle()  # I/O is polled before main resumes: the reader is woken, behind main
        log.append("main")
        await con.idle()
        log.append("main again")

    try:
        run(main)
    finally:
        a.close()
        b.close()
    assert log == ["sent", "main", "readable", "main again"]


def test_foreign_awaitable_gets_a_clear_type_error():
    async def main():
        loop = asyncio.new_event_loop()
        try:
            fut = loop.create_future()
            await fut
        finally:
            loop.close()
    with pytest.raises(TypeError, match="are you awaiting asyncio code"):
        run(main)


def test_a_bare_yield_is_foreign_too():
    @types.coroutine
    def bare():
        yield "something"

    async def main():
        try:
            await bare()
        except TypeError as exc:
            return str(exc)
    message = run(main)
    assert "'something'" in message and "not a conhook operation" in message


def test_no_scheduler_gives_a_clear_error():
    with pytest.raises(RuntimeError, match="no conhook scheduler"):
        con.Lock().acquire()


def test_wait_readable_and_writable_on_a_socket_pair():
    log = []
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    async def reader():
        while True:
            try:
                data = a.recv(100)
            except BlockingIOError:
                await _io.wait_readable(a.fileno())
                continue
            log.append(data)
            if data.endswith(b"."):
                return

    async def writer():
        for chunk in (b"ab", b"cd."):
            await _io.wait_writable(b)
            b.send(chunk)
            await con.sleep(0.01)

    @prejoining
    async def main(scope):
        scope.start(reader)
        scope.start(writer)

    try:
        run(main)
    finally:
        a.close()
        b.close()
    assert b"".join(log) == b"abcd."


def test_two_readers_on_one_fd_are_refused():
    a, b = socket.socketpair()

    async def reader():
        await _io.wait_readable(a)

    @prejoining
    async def main(scope):
        scope.start(reader)
        await con.idle()
        try:
            await _io.wait_readable(a)
        except RuntimeError as exc:
            message = str(exc)
        b.send(b"x")
        return message

    try:
        assert "already waiting to read" in run(main)
    finally:
        a.close()
        b.close()


def test_notify_closing_wakes_the_waiter_with_ebadf():
    a, b = socket.socketpair()

    async def reader():
        await _io.wait_readable(a)

    @prejoining
    async def main(scope):
        scope.start(reader)
        await con.idle()
        _io.notify_closing(a)
        a.close()

    try:
        with pytest.raises(OSError) as info:
            run(main)
        assert info.value.errno == 9
    finally:
        b.close()


def test_readiness_nobody_waits_for_does_not_spin(backend):
    # A readable fd whose reader went away must not make every poll return at once.
    a, b = socket.socketpair()
    polls = []

    async def reader():
        await _io.wait_readable(a)

    @prejoining
    async def main(scope):
        scope.start(reader)
        await con.idle()
        b.send(b"x")  # readable from now on, and nobody reads it
        await con.sleep(0.05)
        kernel = con_kernel()
        kernel.backend = CountingBackend(kernel.backend, polls)
        await con.sleep(0.05)

    try:
        run(main)
    finally:
        a.close()
        b.close()
    assert len(polls) <= 3


class CountingBackend:
    def __init__(self, backend, polls):
        self._backend = backend
        self._polls = polls

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def poll(self, timeout):
        self._polls.append(timeout)
        return self._backend.poll(timeout)


def con_kernel():
    return _kernel.current_kernel()


def test_deadlock_is_raised_with_the_cactus_stack():
    finally_ran = []

    async def stuck(event):
        try:
            await event.wait()
        finally:
            finally_ran.append("stuck")

    async def main():  # spelled out as the compiler expands `sibling stuck@(event)`
        event = con.Event()
        __con_scope__ = __con__.prejoin()
        try:
            __con_scope__.start(stuck, event)
            await event.wait()
        except BaseException as __con_exc__:
            if await __con_scope__.failed(__con_exc__):
                raise
        finally:
            await __con_scope__.join()

    with pytest.raises(con.Deadlock) as info:
        run(main)
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert "bootstrap - main - wait" in message
    assert "| stuck - wait" in message
    assert finally_ran == ["stuck"]


def test_a_worker_thread_wakes_the_scheduler():
    import threading
    import time

    async def main():
        return await con.to_thread(lambda: (time.sleep(0.05), threading.get_ident())[1])

    assert run(main) != threading.get_ident()


def test_kernel_backend_can_be_chosen(backend):
    kernel = _kernel.Kernel(backend)
    try:
        assert kernel.backend.name == backend
    finally:
        kernel.close()


def test_unknown_backend_is_refused(monkeypatch):
    monkeypatch.setenv("CONHOOK_BACKEND", "nonsense")
    async def main():
        return 1
    with pytest.raises(ValueError, match="unknown conhook backend 'nonsense'"):
        run(main)


def test_eventfd_or_pipe_is_closed_after_bootstrap():
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None

    async def main():
        await con.sleep(0.001)

    for _ in range(20):
        run(main)
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) <= before


def test_an_fd_number_reused_without_notify_closing_still_works():
    async def main():
        a, b = socket.socketpair()
        b.send(b"x")
        await _io.wait_readable(a)  # registered with the backend
        number = a.fileno()
        a.close()  # closed without notify_closing: the kernel still remembers the number
        b.close()
        c, d = socket.socketpair()
        try:
            if c.fileno() != number:
                c, d = d, c
            d.send(b"y")
            await _io.wait_writable(c)  # widens the remembered interest of a new fd
            await _io.wait_readable(c)
            return c.recv(1)
        finally:
            c.close()
            d.close()

    assert run(main) == b"y"


def test_a_turn_that_raised_leaves_the_next_hosted_turn_a_queue_of_its_own():
    # Hosted turns keep the next turn's ready queue between calls (run_loop(once=True)). A bug
    # that escapes a turn leaves that queue in use as the ready queue; the next turn must not
    # iterate the queue it appends to.
    class Broken(_traps.Trap):
        def park(self, kernel, thread):
            raise RuntimeError("a bug in park")

    async def breaks():
        await Broken()

    ran = []

    async def switches():
        for turn in range(3):
            ran.append(turn)
            await con.idle()

    kernel = _kernel.Kernel()
    kernel.start(breaks())
    switcher = _threads.Thread(switches(), contextvars.copy_context(), _NoScope())
    try:
        with pytest.raises(RuntimeError, match="a bug in park"):
            kernel.run_loop(True)
        kernel.ready.append(switcher)
        kernel.run_loop(True)
        kernel.run_loop(True)
        assert ran == [0, 1]
    finally:
        kernel.stop()
        kernel.root.coro.close()
        switcher.coro.close()
        kernel.close()


class _NoScope:
    """The scope of a thread started by hand in a test: it is never asked anything."""
