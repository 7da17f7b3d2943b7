"""The kernel as a guest of an asyncio loop, con.aio@ and con.from_aio (docs/hosted.md).

The tests spell ``f@(x)`` as ``await f(x)`` (what the compiler emits), so this module is plain
Python; a few run con programs through ``python -m conhook --loop``.
"""
from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import subprocess
import sys
import textwrap
import threading
import traceback

import pytest

from tests.stress.helpers import default_sigint

import conhook.api as con

from runtime.helpers import prejoining

VAR = contextvars.ContextVar("VAR", default="unset")
CONHOOK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(con.__file__)))


def run_con(source, *args, env=None, timeout=60, **popen):
    """Run con `source` with ``python -m conhook``; the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "conhook", *args, "-c", textwrap.dedent(source)],
                          capture_output=True, text=True, timeout=timeout, cwd=CONHOOK_DIR,
                          env={**os.environ, **(env or {})}, **popen)


def test_threads_timers_and_the_host_loop_take_turns(host_loop):
    log = []
    ticks = []

    async def ticker():  # asyncio code, running on the host loop meanwhile
        while True:
            ticks.append(len(log))
            await asyncio.sleep(0)

    async def sleeper(name, seconds):
        await con.sleep(seconds)
        log.append(name)

    async def spinner():
        for _ in range(200):
            await con.idle()
        log.append("spun")

    async def main():
        task = asyncio.get_running_loop().create_task(ticker())
        await con.gather(sleeper("slow", 0.03), sleeper("fast", 0.01), spinner())
        task.cancel()
        return "done"

    assert con.bootstrap(main, loop=host_loop) == "done"
    assert sorted(log) == ["fast", "slow", "spun"] and log.index("fast") < log.index("slow")
    # The host loop ran while con threads were busy switching: neither side starves the other.
    assert ticks.count(0) > 10


def test_aio_returns_the_result_in_the_threads_own_context(host_loop):
    async def coroutine(x):
        await asyncio.sleep(0.001)
        assert VAR.get() == "con"  # made in the con thread's context...
        VAR.set("asyncio")  # ...so what it sets, the thread sees afterwards (as after await)
        return x * 2, asyncio.current_task() is not None

    async def main():
        VAR.set("con")
        result = await con.aio(coroutine(21))
        return result, VAR.get()

    assert con.bootstrap(main, loop=host_loop) == ((42, True), "asyncio")


def test_aio_awaits_tasks_futures_and_other_awaitables(host_loop):
    class Awaitable:
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return "awaitable"

    async def main():
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_later(0.001, future.set_result, "future")
        task = loop.create_task(asyncio.sleep(0.001, "task"))
        return [await con.aio(future), await con.aio(task), await con.aio(Awaitable())]

    assert con.bootstrap(main, loop=host_loop) == ["future", "task", "awaitable"]


def test_aio_raises_the_tasks_exception_with_its_frames_and_the_users_only(host_loop):
    async def failing():
        await asyncio.sleep(0)
        raise KeyError("from asyncio")

    async def main():
        await con.aio(failing())

    with pytest.raises(KeyError) as info:
        con.bootstrap(main, loop=host_loop)
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    files = {frame.filename for frame in traceback.extract_tb(info.value.__traceback__)}
    assert names[-2:] == ["main", "failing"]
    assert files == {__file__}


def test_a_task_that_finishes_in_its_first_step_is_still_a_task_of_the_threads_context(host_loop):
    # The Task's first step runs in a later loop iteration than the aio@ call (asyncio's own
    # create_task order, on every Python), as asyncio code; a Task may finish there.
    sniffio = pytest.importorskip("sniffio")
    order = []

    async def instant(x):
        order.append("step")
        assert VAR.get() == "con"
        VAR.set("asyncio")
        return x * 2, sniffio.current_async_library(), asyncio.current_task() is not None

    async def failing():
        raise KeyError("at once")

    async def main():
        VAR.set("con")
        asyncio.get_running_loop().call_soon(order.append, "host callback")
        result = await con.aio(instant(21))
        with pytest.raises(KeyError) as info:
            await con.aio(failing())
        return result, VAR.get(), [(frame.name, frame.filename) for frame in traceback.extract_tb(info.tb)]

    result, var, frames = con.bootstrap(main, loop=host_loop)
    assert result == (42, "asyncio", True) and var == "asyncio"
    assert frames[-2:] == [("main", __file__), ("failing", __file__)] and {f for _, f in frames} == {__file__}
    assert order == ["host callback", "step"]


def test_aio_awaits_a_real_task_whose_result_and_failure_reach_the_thread(host_loop):
    # The Task aio@ makes is what the thread awaits: a Task to asyncio in every way, whose
    # result and exception (never "never retrieved") the thread gets as after an await.
    seen = []

    async def coroutine(fail):
        task = asyncio.current_task()
        seen.append((isinstance(task, asyncio.Task), task in asyncio.all_tasks(), task.done()))
        await asyncio.sleep(0)
        if fail:
            raise LookupError("failed in the Task")
        return "value"

    async def main():
        value = await con.aio(coroutine(False))
        with pytest.raises(LookupError, match="failed in the Task"):
            await con.aio(coroutine(True))
        return value

    assert con.bootstrap(main, loop=host_loop) == "value"
    assert seen == [(True, True, False)] * 2


def test_aio_from_asyncio_code_between_turns_says_it_is_for_con_threads(host_loop):
    # asyncio code running on the host loop (no con thread current) cannot park a thread.
    caught = []

    def callback():
        coroutine = asyncio.sleep(0)
        try:
            con.aio(coroutine)
        except RuntimeError as exc:
            caught.append(str(exc))
        caught.append(coroutine.cr_frame is None)  # closed: no "never awaited" warning

    async def main():
        asyncio.get_running_loop().call_soon(callback)
        await con.aio(asyncio.sleep(0.001))

    con.bootstrap(main, loop=host_loop)
    assert caught == ["con.aio@() is for con threads; asyncio code awaits the awaitable itself", True]


def test_a_timer_is_mirrored_while_another_thread_waits_on_asyncio(host_loop):
    # After a turn in which one thread parks on aio@ and another on a con timer, the host loop
    # must still be told of the timer: only the timer's thread can finish the Task.
    async def main():
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        safety = loop.call_later(30, future.set_result, "only the safety net woke it")

        async def wait_for_it():
            return await future

        async def waiter():
            return await con.aio(wait_for_it())

        async def sets_it():
            await con.sleep(0.001)
            future.set_result("set by the sleeper")

        try:
            results = await con.gather(waiter(), sets_it())
        finally:
            safety.cancel()
        return results[0]

    assert con.bootstrap(main, loop=host_loop) == "set by the sleeper"


def test_aio_of_a_task_that_finishes_at_once_still_lets_the_other_threads_run(host_loop):
    log = []

    async def instant():
        return "aio"

    async def through_aio():
        for _ in range(3):
            log.append(await con.aio(instant()))

    async def idler():
        for _ in range(3):
            await con.idle()
            log.append("idle")

    async def main():
        await con.gather(through_aio(), idler())

    con.bootstrap(main, loop=host_loop)
    # aio@ is a switch point even then: the idler ran before the last aio@ returned.
    assert sorted(log) == ["aio"] * 3 + ["idle"] * 3
    assert log.index("idle") < len(log) - 1 - log[::-1].index("aio"), log


def test_aio_makes_its_task_with_the_loops_own_task_factory(host_loop):
    made = []

    def factory(loop, coro, **kwargs):
        made.append(coro.__name__)
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def coroutine():
        await asyncio.sleep(0)
        return VAR.get()

    async def main():
        VAR.set("con")
        asyncio.get_running_loop().set_task_factory(factory)
        try:
            return await con.aio(coroutine())
        finally:
            asyncio.get_running_loop().set_task_factory(None)

    assert con.bootstrap(main, loop=host_loop) == "con"
    assert made == ["coroutine"]


def test_aio_from_a_standalone_kernel_says_how_to_run_hosted():
    async def main():
        await con.aio(asyncio.sleep(0))

    with pytest.raises(RuntimeError, match=r"--loop asyncio.*loop=\"asyncio\""):
        con.bootstrap(main)


def _cancellable(log):
    async def coroutine():
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.02)  # cleanup that takes a while, on the host loop
            log.append("task cleaned up")
    return coroutine()


def test_timeout_cancels_the_task_and_waits_until_it_has_finished(host_loop):
    log = []

    async def main():
        try:
            with con.timeout(0.05):
                await con.aio(_cancellable(log))
        except TimeoutError:
            log.append("TimeoutError")

    con.bootstrap(main, loop=host_loop)
    assert log == ["task cleaned up", "TimeoutError"]


def test_a_failing_sibling_cancels_the_task_and_the_scope_waits_for_it(host_loop):
    log = []

    async def waiter():
        try:
            await con.aio(_cancellable(log))
        except con.Interrupted:
            log.append("Interrupted")
            raise

    async def failer():
        await con.sleep(0.02)
        raise ValueError("sibling failed")

    @prejoining
    async def main(scope):
        scope.start(waiter)
        scope.start(failer)

    with pytest.raises(ValueError, match="sibling failed"):
        con.bootstrap(main, loop=host_loop)
    assert log == ["task cleaned up", "Interrupted"]


def test_a_timeout_inside_a_failing_sibling_group(host_loop):
    log = []

    async def waiter():
        with con.timeout(0.03):
            await con.aio(_cancellable(log))

    @prejoining
    async def main(scope):
        scope.start(waiter)
        scope.start(con.aio, asyncio.sleep(10))

    with pytest.raises(TimeoutError):
        con.bootstrap(main, loop=host_loop)
    assert log == ["task cleaned up"]


def test_a_task_whose_cleanup_fails_raises_that_failure(host_loop):
    async def coroutine():
        try:
            await asyncio.sleep(10)
        finally:
            raise OSError("cleanup failed")

    async def main():
        with con.timeout(0.01):
            await con.aio(coroutine())

    with pytest.raises(OSError, match="cleanup failed") as info:
        con.bootstrap(main, loop=host_loop)
    assert isinstance(info.value.__context__, asyncio.CancelledError)


def test_a_task_that_swallows_its_cancellation_still_ends_aio_with_the_interruption(host_loop):
    # The Task ended with a value, but the thread was interrupted: aio@ raises Interrupted
    # (here the timeout's TimeoutError), not the value.
    log = []

    async def stubborn():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            log.append("cancelled")
        return "value after the cancellation"

    async def main():
        with con.timeout(0.001):
            log.append(await con.aio(stubborn()))

    with pytest.raises(TimeoutError):
        con.bootstrap(main, loop=host_loop)
    assert log == ["cancelled"]


def test_an_interrupted_thread_does_not_start_the_task(host_loop):
    started = []

    async def coroutine():
        started.append(True)

    async def interrupted_then_aio():
        try:
            with con.timeout(0.001):
                try:
                    await con.sleep(1)
                except con.Interrupted:
                    await con.aio(coroutine())
        except TimeoutError:
            return "timed out"

    assert con.bootstrap(interrupted_then_aio, loop=host_loop) == "timed out"
    assert started == []


def test_from_aio_runs_a_con_function_for_asyncio_code(host_loop):
    async def double(x):  # a con function: it switches
        await con.sleep(0.001)
        return x * 2, VAR.get()

    async def failing():
        await con.idle()
        raise LookupError("from con")

    async def asyncio_code():
        VAR.set("asyncio's")
        result = await con.from_aio(double, 21)
        try:
            await con.from_aio(failing)
        except LookupError as exc:
            return result, exc.args[0]

    async def main():
        return await con.aio(asyncio_code())

    assert con.bootstrap(main, loop=host_loop) == ((42, "asyncio's"), "from con")


def test_a_cancelled_awaiting_task_interrupts_the_con_thread_and_waits_for_it(host_loop):
    log = []

    async def con_function():
        try:
            await con.sleep(10)
        except con.Interrupted:
            log.append("con thread interrupted")
            raise
        finally:
            log.append("con thread finished")

    async def main():
        loop = asyncio.get_running_loop()
        task = loop.create_task(con.from_aio(con_function))
        await con.sleep(0.01)
        task.cancel()
        try:
            await con.aio(task)
        except asyncio.CancelledError:
            log.append("task cancelled")

    con.bootstrap(main, loop=host_loop)
    assert log == ["con thread interrupted", "con thread finished", "task cancelled"]


def test_con_threads_asyncio_started_are_interrupted_when_the_program_ends(host_loop):
    log = []

    async def serving():
        try:
            await con.sleep(10)
        finally:
            log.append("finished")

    async def main():
        asyncio.get_running_loop().create_task(con.from_aio(serving))
        await con.sleep(0.01)

    con.bootstrap(main, loop=host_loop)
    assert log == ["finished"]


def _started_from_outside_then_main_returns(host_loop):
    """A token's thread (con.from_thread) and a from_aio thread, both waiting when main returns;
    [(name, why it was interrupted)] as each finished, and bootstrap's result."""
    log, waiting = [], []

    async def serving(name, both):
        waiting.append(name)
        if len(waiting) == 2:
            both.set()
        try:
            await con.sleep(3600)
        except con.Interrupted as exc:
            log.append((name, str(exc)))
            raise

    def os_thread(token, both):
        with pytest.raises(con.Interrupted):
            con.from_thread(serving, "from_thread", both, token=token)

    async def main():
        both = con.Event()
        thread = threading.Thread(target=os_thread, args=(con.current_token(), both))
        thread.start()
        asyncio.get_running_loop().create_task(con.from_aio(serving, "from_aio", both))
        await both.wait()  # (no Deadlock: the token lives)
        return thread

    con.bootstrap(main, loop=host_loop).join()
    return sorted(log)


def test_the_programs_end_interrupts_every_thread_started_from_outside_and_waits(host_loop):
    assert [name for name, _ in _started_from_outside_then_main_returns(host_loop)] == [
        "from_aio", "from_thread"]  # each unwound before bootstrap returned


def test_threads_started_from_outside_are_told_the_same_reason_at_the_programs_end(host_loop):
    assert {reason for _, reason in _started_from_outside_then_main_returns(host_loop)} == {
        "the program's root thread has finished"}


def test_from_aio_after_the_program_finished_says_so(host_loop):
    errors = []

    async def late():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:  # the program has finished: its leftover Tasks are cancelled
            try:
                await con.from_aio(con.idle)
            except RuntimeError as exc:
                errors.append(str(exc))
            raise

    async def main():
        task = asyncio.get_running_loop().create_task(late())
        await con.sleep(0.001)
        return task

    task = con.bootstrap(main, loop=host_loop)
    assert task.done() and "has finished" in errors[0]


def test_from_aio_without_a_hosted_kernel_says_how():
    async def nothing():
        pass

    with pytest.raises(RuntimeError, match="no conhook scheduler is hosted"):
        asyncio.run(con.from_aio(nothing))


def test_a_thread_waiting_on_asyncio_is_no_deadlock_but_a_stuck_one_is(host_loop):
    async def waits_on_asyncio():
        return await con.aio(asyncio.sleep(0.05, "woke"))

    assert con.bootstrap(waits_on_asyncio, loop=host_loop) == "woke"

    async def stuck():
        await con.Event().wait()

    with pytest.raises(con.Deadlock, match="stuck"):
        con.bootstrap(stuck, loop=host_loop)


def test_tree_draws_a_thread_waiting_on_asyncio(host_loop):
    drawn = []

    async def waiting(event):
        await con.aio(event.wait())

    @prejoining
    async def main(scope):
        event = asyncio.Event()
        scope.start(waiting, event)
        await con.sleep(0.01)
        drawn.append(con.tree())
        event.set()

    con.bootstrap(main, loop=host_loop)
    assert "waiting - aio" in drawn[0]


def test_tree_draws_the_threads_asyncio_code_started(host_loop):
    drawn = []

    async def handle(event):
        await event.wait()

    async def main():
        event = con.Event()
        task = asyncio.get_running_loop().create_task(con.from_aio(handle, event))
        await con.sleep(0.01)
        drawn.append(con.tree())
        event.set()
        await con.aio(task)

    con.bootstrap(main, loop=host_loop)
    assert drawn[0].splitlines() == ["bootstrap - main", "from_aio - handle - wait"]


def test_sniffio_names_conhook_in_con_threads_and_asyncio_in_aio_tasks(host_loop):
    sniffio = pytest.importorskip("sniffio")

    async def in_asyncio():
        return sniffio.current_async_library()

    async def main():
        return sniffio.current_async_library(), await con.aio(in_asyncio())

    assert con.bootstrap(main, loop=host_loop) == ("conhook", "asyncio")
    assert sniffio.thread_local.name is None
    assert con.bootstrap(lambda: sniffio.current_async_library()) == "conhook"  # standalone too


def test_sniffio_gets_back_the_name_it_had_after_every_turn(host_loop):
    # (A name set around the host loop is what its asyncio code sees: conhook changes it for its
    # turns only.)
    sniffio = pytest.importorskip("sniffio")

    async def in_asyncio():
        await asyncio.sleep(0)
        return sniffio.current_async_library()

    async def main():
        return [(sniffio.current_async_library(), await con.aio(in_asyncio())) for _ in range(3)]

    sniffio.thread_local.name = "outer"
    try:
        assert con.bootstrap(main, loop=host_loop) == [("conhook", "outer")] * 3
        assert sniffio.thread_local.name == "outer"
    finally:
        sniffio.thread_local.name = None


def test_aio_tasks_are_named_after_aio(host_loop):
    async def name():
        return asyncio.current_task().get_name()

    def factory(loop, coro, **options):
        return asyncio.Task(coro, loop=loop, **options)

    async def main():
        made_here = await con.aio(name())
        asyncio.get_running_loop().set_task_factory(factory)
        return made_here, await con.aio(name())

    assert con.bootstrap(main, loop=host_loop) == ("con.aio@", "con.aio@")


def test_unknown_loop_and_unhostable_backend_say_what_to_do(monkeypatch):
    async def main():
        pass

    with pytest.raises(ValueError, match="unknown host loop 'trio': choose one of asyncio, uvloop"):
        con.bootstrap(main, loop="trio")
    monkeypatch.setenv("CONHOOK_BACKEND", "poll")
    with pytest.raises(RuntimeError, match="poll backend cannot be hosted.*unset CONHOOK_BACKEND"):
        con.bootstrap(main, loop="asyncio")


def test_plain_at_on_an_asyncio_coroutine_names_aio(host_loop, tmp_path):
    script = tmp_path / "script.py"
    script.write_text("import asyncio, con\ndef main():\n    asyncio.sleep@(0.01)\ncon.bootstrap(main)\n")
    result = subprocess.run([sys.executable, "-m", "conhook", "--loop", host_loop, str(script)],
                            capture_output=True, text=True, cwd=CONHOOK_DIR, timeout=60)
    assert "con.aio@(asyncio.sleep(...))" in result.stderr
    assert "conhook/" not in result.stderr.replace(CONHOOK_DIR + "/conhook", "")  # (no frame of ours)


def test_the_runner_hosts_the_programs_bootstrap(host_loop):
    result = run_con("""
        import asyncio, con
        async def where():
            return type(asyncio.get_running_loop()).__module__
        def main():
            print(con.aio@(where()))
        con.bootstrap(main)
    """, "--loop", host_loop)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("uvloop" if host_loop == "uvloop" else "asyncio")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_unwind_the_threads_and_cancel_their_tasks(host_loop, signum):
    proc = subprocess.Popen([sys.executable, "-m", "conhook", "--loop", host_loop, "-c", textwrap.dedent("""
        import asyncio, con, sys
        async def task():
            try:
                await asyncio.sleep(100)
            finally:
                print("task finally", flush=True)
        def waiter():
            try:
                con.aio@(task())
            finally:
                print("con finally", flush=True)
        def main():
            sibling waiter@()
            sibling con.sleep@(100)
            con.sleep@(0.05)
            print("ready", flush=True)
        con.bootstrap(main)
    """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=CONHOOK_DIR,
        preexec_fn=default_sigint)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert out == "task finally\ncon finally\n"
    assert err.strip().endswith("KeyboardInterrupt"), err
    assert proc.returncode == -signum


def test_ctrl_c_while_asyncio_code_runs_lets_it_finish_its_step(host_loop):
    # Between turns the host loop runs asyncio's code: Ctrl-C interrupts the con threads
    # (through aio@, the Task is cancelled at its next await), not the Task's step midway.
    proc = subprocess.Popen([sys.executable, "-m", "conhook", "--loop", host_loop, "-c", textwrap.dedent("""
        import asyncio, con, time
        async def busy():
            print("ready", flush=True)
            start = time.monotonic()
            while time.monotonic() - start < 1:
                pass
            print("step finished", flush=True)
            await asyncio.sleep(100)
        con.bootstrap(lambda: con.aio@(busy()))
    """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=CONHOOK_DIR,
        preexec_fn=default_sigint)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert out == "step finished\n"
    assert err.strip().endswith("KeyboardInterrupt") and "in busy" not in err, err


def test_schedule_seed_and_watchdog_work_hosted(host_loop):
    program = """
        import con
        def worker(name):
            con.idle@()
            print(name, end=" ")
        def main():
            for name in range(8):
                sibling worker@(name)
        con.bootstrap(main)
    """
    runs = [run_con(program, "--loop", host_loop, env={"CONHOOK_SCHEDULE_SEED": seed}).stdout
            for seed in ("1", "1", "2")]
    assert runs[0] == runs[1] != runs[2]
    watched = run_con("""
        import con, time
        def main():
            con.idle@()
            time.sleep(0.3)
        con.bootstrap(main)
    """, "--loop", host_loop, env={"CONHOOK_WATCHDOG": "0.05"})
    assert "held the scheduler" in watched.stderr or "holds the scheduler" in watched.stderr, watched.stderr
