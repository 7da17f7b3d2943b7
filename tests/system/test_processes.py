"""run_process@ and open_process@ (docs/spec.md §3): pipes as streams, no deadlock on large
output, children stopped and reaped when their scope ends, on every backend and both ways of
waiting for a child's exit (a pidfd; the waiting OS thread)."""
from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import conhook.api as con
from conhook._system import processes

from .helpers import prejoining, run

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WAYS = ["pidfd", "thread"] if processes.USE_PIDFD else ["thread"]


@pytest.fixture(params=WAYS, autouse=True)
def exit_wait(request, monkeypatch):
    """Wait for children through a pidfd, or through the waiting OS thread."""
    monkeypatch.setattr(processes, "USE_PIDFD", request.param == "pidfd")
    return request.param


def gone(pid):
    """Whether no process `pid` exists any more (it exited and was reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_cat_round_trip_of_64_mib_while_stderr_is_written_too():
    data = bytes(range(256)) * (64 * 1024 * 1024 // 256)
    # The child writes 4 MB to stderr before it reads stdin: a caller that fed stdin first, or
    # drained stdout and stderr one after the other, would deadlock on a full pipe.
    script = "head -c 4000000 /dev/zero >&2; cat; head -c 1000000 /dev/zero >&2"

    async def main():
        return await con.run_process(["sh", "-c", script], input=data, capture_output=True)

    done = run(main)
    assert done.returncode == 0
    assert len(done.stdout) == len(data) and done.stdout == data
    assert done.stderr == bytes(5_000_000)


def test_sleep_under_a_timeout_leaves_no_child(tmp_path):
    pidfile = tmp_path / "pid"

    async def main():
        with con.timeout(0.2):
            await con.run_process(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 10"])

    with pytest.raises(TimeoutError):
        run(main)
    assert gone(int(pidfile.read_text()))


def test_check_raises_with_the_output():
    async def main():
        await con.run_process(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True)

    with pytest.raises(subprocess.CalledProcessError) as caught:
        run(main)
    assert (caught.value.returncode, caught.value.stdout, caught.value.stderr) == (3, b"out\n", b"err\n")


def test_check_false_returns_the_status_and_a_signal_is_negative():
    async def main():
        failed = await con.run_process(["sh", "-c", "exit 7"], check=False)
        killed = await con.run_process(["sh", "-c", "kill -9 $$"], check=False)
        return failed.returncode, killed.returncode, failed.stdout

    assert run(main) == (7, -9, None)


def test_200_concurrent_short_processes():
    async def one(i):
        done = await con.run_process(["sh", "-c", f"echo {i}"], capture_output=True)
        return int(done.stdout)

    async def main():
        return await con.gather(*[one(i) for i in range(200)])

    assert run(main) == list(range(200))


def test_open_process_pipes_keep_the_stream_contract():
    async def main():
        with await con.open_process(["cat"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE) as proc:
            await proc.stdin.write(b"hello")
            proc.stdin.shutdown_write()
            assert proc.stdin.closed
            got = await proc.stdout.read()
            with pytest.raises(EOFError):
                await proc.stdout.read()
            with pytest.raises(io.UnsupportedOperation):
                await proc.stdout.write(b"x")
            status = await proc.wait()
        proc.stdout.close()  # closed by the block's end already: nothing
        return got, status, proc.returncode

    assert run(main) == (b"hello", 0, 0)


def test_closing_a_pipe_wakes_its_reader_with_ebadf():
    @prejoining
    async def main(scope):
        with await con.open_process(["sleep", "10"], stdout=subprocess.PIPE) as proc:
            async def reader():
                try:
                    await proc.stdout.read()
                except OSError as exc:
                    return exc.errno
            scope.start(reader)
            await con.idle()
            proc.stdout.close()
        return proc

    proc = run(main)
    assert proc.returncode == -signal.SIGTERM and gone(proc.pid)


def test_an_interrupted_wait_leaves_the_child_running():
    async def main():
        with await con.open_process(["sleep", "10"]) as proc:
            try:
                with con.timeout(0.05):
                    await proc.wait()
            except TimeoutError:
                pass
            running = proc.returncode is None and not gone(proc.pid)
            proc.kill()
            return running, await proc.wait()

    assert run(main) == (True, -signal.SIGKILL)


def test_a_process_left_running_is_stopped_before_its_scope_ends():
    async def child_user(log):
        with await con.open_process(["sleep", "10"]) as proc:
            log.append(proc)
        log.append(proc.returncode)  # the block's end does not wait: still running

    @prejoining
    async def main(scope, log):
        scope.start(child_user, log)

    log = []
    run(main, log)
    proc = log[0]
    assert log[1] is None
    assert proc.returncode == -signal.SIGTERM and gone(proc.pid)


# Ignores SIGTERM, then writes its pid into the file argv[1] (whole, by a rename).
IGNORE_SIGTERM = ("import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                  "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); "
                  "os.rename(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(10)")


async def until_exists(path):
    while not path.exists():
        await con.sleep(0.005)


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    async def main(ready):
        argv = [sys.executable, "-c", IGNORE_SIGTERM, str(ready)]
        with await con.open_process(argv, grace=0.2) as proc:
            await until_exists(ready)  # it ignores SIGTERM from now on
        return proc

    proc = run(main, tmp_path / "a")  # the root outside any scope: stopped where the block ends
    assert proc.returncode == -signal.SIGKILL and gone(proc.pid)

    @prejoining
    async def in_scope(scope, ready):
        return await main(ready)

    proc = run(in_scope, tmp_path / "b")  # in a scope: stopped by a thread of that scope
    assert proc.returncode == -signal.SIGKILL and gone(proc.pid)


def test_an_interrupted_run_process_kills_after_the_grace_period(tmp_path):
    ready = tmp_path / "ready"

    async def interrupter():
        await until_exists(ready)
        raise KeyError("stop")

    @prejoining
    async def main(scope):
        scope.start(con.run_process, [sys.executable, "-c", IGNORE_SIGTERM, str(ready)], grace=0.2)
        scope.start(interrupter)

    with pytest.raises(KeyError):
        run(main)
    assert gone(int(ready.read_text()))


def test_an_interrupted_thread_starts_no_child():
    async def main():
        try:
            with con.timeout(0.01):
                try:
                    await con.sleep(1)
                finally:
                    await con.run_process(["true"])
        except TimeoutError:
            return "not started"

    assert run(main) == "not started"


def test_a_missing_program_raises_and_leaks_no_fd():
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None

    async def main():
        with pytest.raises(FileNotFoundError):
            await con.run_process(["/no/such/program"], input=b"x", capture_output=True)

    run(main)
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before


CTRL_C = f"""
import sys, subprocess
sys.path.insert(0, {ROOT!r})
import con

def runner():
    con.run_process@(["sh", "-c", "echo $$; exec sleep 30"], stdout=sys.stdout)

def opener():
    with con.open_process@(["sh", "-c", "echo $$; exec sleep 30"], stdout=sys.stdout) as proc:
        proc.wait@()

def main():
    sibling runner@()
    sibling runner@()
    sibling opener@()

con.bootstrap(main)
"""


def test_ctrl_c_leaves_no_child(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(CTRL_C))
    proc = subprocess.Popen([sys.executable, "-m", "conhook", str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        pids = [int(proc.stdout.readline()) for _ in range(3)]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "KeyboardInterrupt" in err
    assert [pid for pid in pids if not gone(pid)] == []


def test_pipe_errors_say_which_pipe():
    async def main():
        with await con.open_process(["true"], stdout=subprocess.PIPE) as proc:
            await proc.wait()
        with pytest.raises(OSError) as caught:
            await proc.stdout.read()
        return caught.value.errno, str(caught.value)

    code, message = run(main)
    assert code == errno.EBADF and "stdout of process" in message


def test_a_caller_interrupted_while_its_child_starts_stops_it(monkeypatch, tmp_path):
    spawn = processes._spawn
    started = []

    def slow_spawn(*args):
        import time
        time.sleep(0.1)  # in the spawner OS thread: the caller's timeout runs out meanwhile
        process = spawn(*args)
        started.append(process)
        return process

    monkeypatch.setattr(processes, "_spawn", slow_spawn)

    async def main():
        with con.timeout(0.01):
            await con.open_process(["sleep", "10"])

    with pytest.raises(TimeoutError):
        run(main)
    [process] = started
    assert process.returncode == -signal.SIGTERM and gone(process.pid)


def test_starting_children_does_not_hold_the_scheduler(monkeypatch):
    spawn = processes._spawn
    log = []

    def slow_spawn(*args):
        import time
        time.sleep(0.05)
        return spawn(*args)

    monkeypatch.setattr(processes, "_spawn", slow_spawn)

    async def ticker():
        for _ in range(3):
            log.append("tick")
            await con.sleep(0.001)

    @prejoining
    async def main(scope):
        scope.start(ticker)
        await con.run_process(["true"])
        log.append("ran")

    run(main)
    assert log == ["tick", "tick", "tick", "ran"]


def test_closing_twice_stops_the_child_once():
    @prejoining
    async def main(scope):
        proc = await con.open_process(["sleep", "10"])
        proc.close()
        proc.close()
        return proc, len(scope.running())

    proc, stoppers = run(main)
    assert stoppers == 1 and proc.returncode == -signal.SIGTERM


def test_the_spawner_os_thread_keeps_no_hold_on_the_process_it_started(monkeypatch):
    """A spawner OS thread may still hold its work, and what the work made, after the caller
    woke (a pool's worker drops it when it gets to it): the Process is the caller's alone, so
    one dropped unclosed warns at once, not when the spawner lets go."""
    import gc
    import threading

    let_go = threading.Event()

    class LingeringSpawner:
        def submit(self, work):
            def run_and_hold():
                work()
                let_go.wait(10)  # `work` still referenced here
            threading.Thread(target=run_and_hold, daemon=True).start()

    monkeypatch.setattr(processes, "_spawner", LingeringSpawner())

    async def main():
        proc = await con.open_process(["sleep", "10"])
        return proc.pid

    try:
        with pytest.warns(ResourceWarning, match="never closed"):
            pid = run(main)
            gc.collect()
    finally:
        let_go.set()
    try:
        os.waitpid(pid, 0)  # (a child the finaliser could not reap within its wait)
    except ChildProcessError:
        pass  # the Process's finaliser reaped it
    assert gone(pid)


def test_a_process_never_closed_is_killed_and_reaped_with_one_warning():
    import gc
    import warnings

    async def main():
        proc = await con.open_process(["sleep", "10"])
        return proc._popen  # (the Process itself is dropped unclosed)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        popen = run(main)
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == [
        f"<con.Process {popen.pid} ['sleep', '10'] running> was never closed: use it in a with block; "
        "it is killed now"]  # and not subprocess's "still running" as well
    assert popen.returncode == -signal.SIGKILL  # reaped
    assert gone(popen.pid)
