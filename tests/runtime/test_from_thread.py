"""OS threads calling into a scheduler (``con.from_thread``, ``con.current_token``) and the
limiter of ``to_thread@`` (``con.CapacityLimiter``): issue 16, item 3."""
from __future__ import annotations

import contextvars
import threading
import traceback

import pytest

from .helpers import __con__, _kernel, con, prejoining, run

var = contextvars.ContextVar("var", default="unset")


def _user_frames_only(exc):
    names = [frame.f_globals.get("__name__", "") for frame, _ in traceback.walk_tb(exc.__traceback__)]
    return names and not any(name.startswith("conhook.") for name in names)


# -- from_thread in a to_thread@ worker --------------------------------------------------------

def test_a_worker_calls_from_thread_10000_times():
    calls = []

    async def add(i):  # non-atomic: it switches in the scheduler
        await con.idle()
        calls.append(i)
        return i

    def worker(n):
        return sum(con.from_thread(add, i) for i in range(n))

    async def main():
        return await con.to_thread(worker, 10_000)
    assert run(main) == sum(range(10_000))
    assert calls == list(range(10_000))


def test_from_thread_runs_ordinary_functions_in_the_scheduler_thread():
    def worker():
        return con.from_thread(threading.get_ident), threading.get_ident()

    async def main():
        in_scheduler, in_worker = await con.to_thread(worker)
        return in_scheduler, in_worker, threading.get_ident()
    in_scheduler, in_worker, scheduler = run(main)
    assert in_scheduler == scheduler != in_worker


def test_from_thread_in_a_worker_runs_in_the_callers_thread_and_context():
    async def probe():
        return var.get(), con.tree()

    def worker():
        return con.from_thread(probe)

    async def main():
        var.set("caller")
        return await con.to_thread(worker)
    seen, tree = run(main)
    assert seen == "caller"
    assert "bootstrap - main - probe" in tree  # drawn in the caller, below its own calls


def test_from_thread_reraises_the_failure_in_the_os_thread_with_user_frames_only():
    async def fail():
        await con.idle()
        raise ValueError("from the scheduler")

    def worker():
        try:
            con.from_thread(fail)
        except ValueError as exc:
            return exc
        raise AssertionError("from_thread did not raise")

    async def main():
        return await con.to_thread(worker)
    exc = run(main)
    assert str(exc) == "from the scheduler"
    assert _user_frames_only(exc)
    assert [frame.f_code.co_name for frame, _ in traceback.walk_tb(exc.__traceback__)] == ["worker", "fail"]


def test_from_thread_in_a_scheduler_thread_is_refused():
    async def main():
        con.from_thread(con.idle)
    with pytest.raises(RuntimeError, match=r"OS thread of a conhook scheduler.*fn@\(\.\.\.\)") as info:
        run(main)
    assert _user_frames_only(info.value)


def test_from_thread_in_a_foreign_os_thread_without_a_token_names_the_token():
    errors = []

    def foreign():
        try:
            con.from_thread(con.idle)
        except RuntimeError as exc:
            errors.append(exc)
    thread = threading.Thread(target=foreign)
    thread.start()
    thread.join()
    assert "token=con.current_token()" in str(errors[0])
    with pytest.raises(TypeError, match="current_token"):
        con.from_thread(con.idle, token=object())


# -- interruption of the caller while its worker calls back -----------------------------------

class _Stop(Exception):
    pass


def _interrupting(call, when):
    """A function that runs `call` in a thread and fails a sibling once `when` returns, so that
    the thread running `call` is interrupted then, whatever the load (not after a delay)."""
    async def stopper():
        await when()
        raise _Stop

    @prejoining
    async def both(scope):
        scope.start(call)
        scope.start(stopper)
    return both


def test_caller_interrupted_while_the_worker_is_inside_from_thread():
    """The call runs in the caller, so the caller's interruption reaches it; the worker's
    from_thread raises Interrupted; the caller leaves at once; later from_thread calls of
    that worker raise Interrupted without running anything."""
    worker_done = threading.Event()
    seen, ran_later = [], []

    async def main():
        inside = con.Event()

        async def forever():
            inside.set()
            try:
                await con.sleep(3600)
            finally:
                seen.append("finally ran")

        def worker():
            try:
                con.from_thread(forever)
            except con.Interrupted as exc:
                seen.append(type(exc))
            try:
                con.from_thread(ran_later.append, 1)
            except con.Interrupted as exc:
                seen.append(str(exc))
            worker_done.set()

        async def caller():
            await con.to_thread(worker)
        with pytest.raises(_Stop):
            await _interrupting(caller, inside.wait)()
        await con.to_thread(worker_done.wait)
    run(main)
    assert seen[:2] == ["finally ran", con.Interrupted]
    assert "no longer waits for this worker" in seen[2]
    assert ran_later == []


def test_caller_interrupted_while_parked_refuses_the_workers_next_call():
    started, go, worker_done = threading.Event(), threading.Event(), threading.Event()
    outcome = []

    def worker():
        started.set()
        go.wait()
        try:
            outcome.append(con.from_thread(lambda: "ran"))
        except con.Interrupted:
            outcome.append("Interrupted")
        worker_done.set()

    async def caller():
        await con.to_thread(worker)

    async def worker_started():
        await con.to_thread(started.wait)

    async def main():
        with pytest.raises(_Stop):
            await _interrupting(caller, worker_started)()
        go.set()
        await con.to_thread(worker_done.wait)
    run(main)
    assert outcome == ["Interrupted"]


# -- from_thread with a token, in OS threads conhook did not start -------------------------------

def test_a_token_runs_the_call_as_a_new_thread_in_the_os_threads_context():
    results = []

    async def main():
        token = con.current_token()
        event = con.Event()

        async def set_it(x):
            await con.sleep(0.001)
            event.set()
            return x * 2, var.get(), threading.get_ident()

        def foreign():
            var.set("foreign")
            results.append(con.from_thread(set_it, 21, token=token))
        thread = threading.Thread(target=foreign)
        thread.start()
        await event.wait()  # only the foreign thread sets it: no Deadlock while the token lives
        await con.to_thread(thread.join)
        return threading.get_ident()
    scheduler = run(main)
    assert results == [(42, "foreign", scheduler)]


def test_a_tokens_call_reraises_in_the_os_thread_with_user_frames_only():
    errors = []

    async def fail():
        await con.idle()
        raise ValueError("from the scheduler")

    def foreign(token):
        for fn in (fail, 42):  # a failure of the call; a refusal (TypeError) before it runs
            try:
                con.from_thread(fn, token=token)
            except (ValueError, TypeError) as exc:
                errors.append(exc)

    async def main():
        thread = threading.Thread(target=foreign, args=(con.current_token(),))
        thread.start()
        await con.to_thread(thread.join)
    run(main)
    assert [type(exc) for exc in errors] == [ValueError, TypeError]
    assert [[frame.f_code.co_name for frame, _ in traceback.walk_tb(exc.__traceback__)]
            for exc in errors] == [["foreign", "fail"], ["foreign"]]


def test_a_token_whose_scheduler_has_finished_is_refused():
    async def main():
        return con.current_token()
    token = run(main)
    with pytest.raises(RuntimeError, match="has finished"):
        con.from_thread(con.idle, token=token)


def test_a_tokens_thread_still_running_when_the_root_returns_is_interrupted_and_waited_for():
    started = threading.Event()
    outcome, cleaned = [], []

    async def forever():
        started.set()
        try:
            await con.sleep(3600)
        finally:
            cleaned.append(_kernel.state.kernel is not None)  # unwound in the scheduler

    def foreign(token):
        try:
            con.from_thread(forever, token=token)
        except con.Interrupted as exc:
            outcome.append(str(exc))

    async def main():
        thread = threading.Thread(target=foreign, args=(con.current_token(),))
        thread.start()
        await con.to_thread(started.wait)
        return thread
    thread = run(main)
    assert cleaned == [True]  # bootstrap returned after the thread's finally block ran
    thread.join()
    assert outcome == ["the program's root thread has finished"]


def test_tree_draws_a_tokens_threads_after_the_roots():
    drawn = []
    started = threading.Event()

    async def waiting(event):
        started.set()
        await event.wait()

    async def serving(event):  # the expansion of: sibling waiting@(event); event.wait@()
        __con_scope__ = __con__.prejoin()
        try:
            __con_scope__.start(waiting, event)
            await event.wait()
        except BaseException as __con_exc__:
            if await __con_scope__.failed(__con_exc__):
                raise
        finally:
            await __con_scope__.join()

    async def main():
        event = con.Event()
        thread = threading.Thread(target=con.from_thread, args=(serving, event),
                                  kwargs={"token": con.current_token()})
        thread.start()
        await con.to_thread(started.wait)
        drawn.append(con.tree())
        event.set()
        await con.to_thread(thread.join)

    run(main)
    assert drawn[0].splitlines() == ["bootstrap - main",
                                     "from_thread - serving - wait",
                                     "                      | waiting - wait"]


# -- the limiter ---------------------------------------------------------------------------------

class _Gauge:
    """Counts the workers running at once; holds them until `go` once `bound` run together."""

    def __init__(self, bound):
        self.bound, self.running, self.peak, self.done = bound, 0, 0, 0
        self.lock = threading.Lock()
        self.full, self.go = threading.Event(), threading.Event()

    def work(self):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            if self.running == self.bound:
                self.full.set()
        self.go.wait()
        with self.lock:
            self.running -= 1
            self.done += 1


def test_the_limiter_holds_1000_queued_calls_to_its_bound():
    limiter = con.CapacityLimiter(10)
    gauge = _Gauge(10)

    @prejoining
    async def main(scope):
        for _ in range(1000):
            scope.start(con.to_thread, gauge.work, limiter=limiter)
        await con.to_thread(gauge.full.wait)  # (the default limiter: not held by these)
        queued = limiter.waiting, limiter.borrowed_tokens
        gauge.go.set()
        return queued
    assert run(main) == (990, 10)
    assert (gauge.peak, gauge.done, limiter.borrowed_tokens, limiter.waiting) == (10, 1000, 0, 0)


def test_the_default_limiter_bounds_calls_to_40():
    gauge = _Gauge(con.current_default_thread_limiter.__globals__["DEFAULT_LIMIT"])
    extra = con.CapacityLimiter(1)

    @prejoining
    async def main(scope):
        assert con.current_default_thread_limiter().total_tokens == 40
        for _ in range(100):
            scope.start(con.to_thread, gauge.work)
        await con.to_thread(gauge.full.wait, limiter=extra)
        queued = con.current_default_thread_limiter().waiting
        gauge.go.set()
        return queued
    assert run(main) == 60
    assert gauge.peak == 40


def test_calls_beyond_the_bound_start_in_the_order_they_were_made():
    limiter = con.CapacityLimiter(1)
    gauge = _Gauge(1)
    gauge.go.set()
    order = []

    def work(i):
        order.append(i)
        gauge.work()

    @prejoining
    async def main(scope):
        for i in range(200):
            scope.start(con.to_thread, work, i, limiter=limiter)
    run(main)
    assert order == list(range(200))
    assert gauge.peak == 1


def test_an_interrupted_queued_call_leaves_the_queue_cleanly():
    limiter = con.CapacityLimiter(1)
    release = threading.Event()
    ran = []

    @prejoining
    async def main(scope):
        scope.start(con.to_thread, release.wait, limiter=limiter)
        await con.idle()  # the blocker holds the token
        with pytest.raises(TimeoutError):
            with con.timeout(0.02):
                await con.to_thread(ran.append, "queued", limiter=limiter)
        state = limiter.waiting, limiter.borrowed_tokens
        release.set()
        await con.to_thread(ran.append, "after", limiter=limiter)
        return state
    assert run(main) == (0, 1)
    assert ran == ["after"]
    assert limiter.borrowed_tokens == 0


def test_a_call_waiting_for_the_limiter_says_so_in_the_cactus_stack():
    limiter = con.CapacityLimiter(1)
    release = threading.Event()

    @prejoining
    async def main(scope):
        scope.start(con.to_thread, release.wait, limiter=limiter)
        scope.start(con.to_thread, release.wait, limiter=limiter)
        await con.idle()
        tree = con.tree()
        release.set()
        return tree
    assert [line.strip() for line in run(main).splitlines()[1:]] == [
        "| to_thread", "| to_thread - to_thread (queued: all 1 tokens of its limiter borrowed)"]


def test_raising_total_tokens_lets_waiting_calls_go():
    limiter = con.CapacityLimiter(1)
    gauge = _Gauge(3)

    @prejoining
    async def main(scope):
        for _ in range(3):
            scope.start(con.to_thread, gauge.work, limiter=limiter)
        await con.idle()
        assert (limiter.borrowed_tokens, limiter.waiting) == (1, 2)
        limiter.total_tokens = 3
        await con.to_thread(gauge.full.wait)
        gauge.go.set()
    run(main)
    assert gauge.peak == 3


def test_limiter_arguments_are_checked():
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError, match="total_tokens must be an int >= 1"):
            con.CapacityLimiter(bad)

    async def main():
        await con.to_thread(print, limiter=3)
    with pytest.raises(TypeError, match="con.CapacityLimiter.*functools.partial"):
        run(main)
