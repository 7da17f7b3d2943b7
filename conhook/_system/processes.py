"""Child processes: ``run_process@`` and ``open_process@`` (docs/spec.md §3).

Design rules:
* The child is started by ``subprocess.Popen`` with every ``subprocess.PIPE`` replaced by a
  pipe of our own whose parent end becomes a ``PipeStream``.  Popen blocks until the child has
  exec'd (about a millisecond), so it runs in one of ``SPAWNERS`` OS threads, as in trio: the
  scheduler goes on meanwhile, and children start in parallel.  The caller waits for it without
  being interruptible (a child must not be started behind an interrupted caller's back), then
  stops the child at once if it was interrupted meanwhile.
* Its exit is waited for without SIGCHLD, through an fd that becomes readable when it exits,
  waited on like any other fd: a pidfd on Linux 5.3+ (``os.pidfd_open``), else a pipe whose
  write end an OS thread closes once ``waitpid`` returns (the last resort: one OS thread per
  waited-for child).  Each wait opens its own fd, so any number of threads may wait at once.
* A child never outlives the scope that started it.  ``run_process@`` interrupted, or a
  process whose ``with`` block ends while it runs, is *stopped*: SIGTERM, then SIGKILL if it
  has not exited after the grace period (``grace``, 5 s by default, as trio), then reaped.
  Stopping is not an interruption point (like waiting for a prejoin scope's threads): an
  interrupted thread still waits for its child to be gone.  At a ``with`` block's end, which
  cannot wait, the stopping runs in a thread started in the innermost open prejoin scope of the
  thread (or the scope that started it), which therefore cannot finish before the child is
  reaped; the root thread outside any scope stops it there, blocking: no other thread exists
  then.
* Large output never deadlocks: ``run_process@`` feeds stdin and drains stdout and stderr in
  threads of their own (``gather``) while it waits for the exit.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

from .._runtime.backends import READ
from .._runtime.kernel import current_kernel, current_thread, strip_internal_frames
from .._runtime.prejoin import Scope
from .._runtime.results import gather
from .._runtime.traps import Trap, interrupted
from .pipes import PipeStream

__all__ = ["Process", "open_process", "run_process", "GRACE"]

GRACE = 5.0  # seconds between SIGTERM and SIGKILL when a child is stopped (trio's default)
SPAWNERS = 16  # OS threads that start children (each fork/exec waits for the child's exec)
KILLED_REAP_WAIT = 0.1  # seconds a finaliser waits to reap the child it SIGKILLed (gone at once)
USE_PIDFD = hasattr(os, "pidfd_open")  # False: the waiting OS thread (tests force it)


class _ExitWait(Trap):
    """Park until `fd` (a pidfd, or the read end of an exit pipe) is readable, or until
    `deadline` (on the kernel's clock) passes.  When not `interruptible`, as when a child is
    stopped, interruption does not wake it."""
    __slots__ = ("fd", "deadline", "interruptible", "thread", "entry")
    label = "wait"

    def __init__(self, fd, deadline, interruptible):
        self.fd, self.deadline, self.interruptible = fd, deadline, interruptible
        self.thread = self.entry = None

    def park(self, kernel, thread):
        if self.interruptible and thread.interrupt is not None:
            return interrupted(thread)
        exc = kernel.wait_io(thread, self.fd, READ, self)
        if exc is None:
            self.thread = thread
            if self.deadline is not None:
                self.entry = kernel.call_at(self.deadline, self._expire)
        return exc

    def _expire(self):
        thread, self.entry = self.thread, None
        if thread is not None and thread.parked_on is self:  # not woken by the fd meanwhile
            kernel = current_kernel()
            kernel.abort_io(thread, self.fd, READ)
            kernel.wake(thread)

    def abort(self, kernel, thread):
        kernel.abort_io(thread, self.fd, READ)
        self._forget(kernel)

    def _forget(self, kernel):
        if self.entry is not None:
            kernel.cancel_timer(self.entry)
            self.entry = None
        self.thread = None


class _ExitPipes:
    """The last resort: an OS thread that waits for the child (``Popen.wait``, which reaps
    it), then closes the write end of every pipe handed out, so their read ends turn readable."""
    __slots__ = ("popen", "lock", "writers", "started")

    def __init__(self, popen):
        self.popen = popen
        self.lock = threading.Lock()
        self.writers = []
        self.started = False

    def fd(self):
        """A new fd that turns readable once the child has exited; None if it has."""
        reader, writer = os.pipe()
        with self.lock:
            if self.popen.returncode is None:
                self.writers.append(writer)
                if not self.started:
                    self.started = True
                    threading.Thread(target=self._wait, daemon=True,
                                     name=f"conhook waitpid {self.popen.pid}").start()
                return reader
        os.close(reader)
        os.close(writer)
        return None

    def _wait(self):
        try:
            self.popen.wait()
        finally:
            with self.lock:
                writers, self.writers = self.writers, []
            for writer in writers:
                os.close(writer)


class Process:
    """A child process started by ``open_process@``.

    ``stdin``, ``stdout``, ``stderr``: a ``PipeStream`` for each stream opened with
    ``subprocess.PIPE``, else None.  ``pid``, ``args``, ``returncode`` (None while it runs; as
    ``Popen``'s: negative for a signal).  ``wait@()`` returns the exit status;
    ``send_signal(sig)``, ``terminate()``, ``kill()`` signal it (nothing once it was reaped).
    ``with process:`` closes the pipes at the block's end and stops the child if it still runs
    (SIGTERM, then SIGKILL after `grace` seconds, then reaped); the block's end does not wait
    for a natural exit: call ``wait@()`` in it for that.
    """

    def __init__(self, popen, stdin, stdout, stderr, grace):
        self._popen = popen
        self.pid = popen.pid
        self.args = popen.args
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.grace = grace
        self._exit_pipes = None
        self._stopping = False

    @property
    def returncode(self):
        """The exit status once the child has been reaped, else None."""
        return self._popen.returncode

    def send_signal(self, sig):
        """Send `sig` to the child, unless it has been reaped already."""
        self._popen.send_signal(sig)

    def terminate(self):
        """SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self):
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)

    async def wait(self):
        """``wait@()``: wait until the child exits and return its exit status (an
        interruption point; an interrupted wait leaves the child running)."""
        while self._popen.returncode is None:
            await self._wait_exit(None, True)
        return self._popen.returncode

    async def _wait_exit(self, deadline, interruptible):
        """Wait until the child has exited and is reaped, or `deadline` passes."""
        popen = self._popen
        if popen.returncode is not None or popen.poll() is not None:
            return
        if USE_PIDFD:
            try:
                fd = os.pidfd_open(self.pid)
            except ProcessLookupError:  # reaped meanwhile (not by us): Popen will tell
                popen.poll()
                return
        else:
            if self._exit_pipes is None:
                self._exit_pipes = _ExitPipes(popen)
            fd = self._exit_pipes.fd()
            if fd is None:
                return
        trap = _ExitWait(fd, deadline, interruptible)
        try:
            await trap
        finally:
            kernel = current_kernel()
            trap._forget(kernel)
            kernel.notify_closing(fd)
            os.close(fd)
        popen.poll()  # reap (the waiting OS thread has reaped already)

    async def _stop(self):
        """SIGTERM; SIGKILL after the grace period; reaped.  Not an interruption point."""
        kernel = current_kernel()
        if self._popen.returncode is None:
            self.terminate()
            await self._wait_exit(kernel.clock() + self.grace, False)
        if self._popen.returncode is None:
            self.kill()
            while self._popen.returncode is None:
                await self._wait_exit(None, False)

    def _close_pipes(self):
        for pipe in (self.stdin, self.stdout, self.stderr):
            if pipe is not None:
                pipe.close()

    def close(self):
        """Close the pipes; if the child still runs, stop it (see the class's docstring).
        It never blocks; closing again does nothing more."""
        self._close_pipes()
        if self._stopping or self._popen.returncode is not None or self._popen.poll() is not None:
            return
        self._stopping = True
        thread = current_thread()
        scope = next((s for s in reversed(thread.scopes or ()) if isinstance(s, Scope)),
                     thread.scope)
        if scope is None:
            # The root thread outside any scope: no other thread exists now (each lives in an
            # open scope), so waiting here, blocking, holds nobody up.
            self.terminate()
            try:
                self._popen.wait(self.grace)
            except subprocess.TimeoutExpired:
                self.kill()
                self._popen.wait()
            return
        scope.start(self._stop)
        scope.children[-1].coro.__qualname__ = f"stop process {self.pid}"

    def __enter__(self):
        return self

    def __del__(self):
        popen = getattr(self, "_popen", None)
        if popen is not None and not self._stopping and popen.returncode is None:
            warnings.warn(f"{self!r} was never closed: use it in a with block; it is killed now",
                          ResourceWarning, source=self, stacklevel=2)
            try:
                self.kill()
                popen.wait(KILLED_REAP_WAIT)  # (reaped: no second warning, "still running", from Popen)
            except Exception:  # noqa: BLE001  (a finaliser must not raise; a child not gone in time
                pass           # is reaped later by subprocess, from its list of children left active)

    def __exit__(self, *exc_info):
        self.close()
        return False

    def __repr__(self):
        state = "running" if self._popen.returncode is None else f"returncode={self.returncode}"
        return f"<con.Process {self.pid} {self.args!r} {state}>"


def _spawn(argv, stdin, stdout, stderr, cwd, env, grace):
    """Start the child; each PIPE becomes a pipe of ours, its parent end a PipeStream."""
    child_ends, parent_ends = [], []

    def pipe_for(spec, child_reads):
        if spec is not subprocess.PIPE:
            return spec
        reader, writer = os.pipe()
        child, parent = (reader, writer) if child_reads else (writer, reader)
        child_ends.append(child)
        parent_ends.append(parent)
        return child

    try:
        specs = (pipe_for(stdin, True), pipe_for(stdout, False), pipe_for(stderr, False))
        popen = subprocess.Popen(argv, stdin=specs[0], stdout=specs[1], stderr=specs[2],
                                 cwd=cwd, env=env)
    except BaseException:
        for fd in parent_ends:
            os.close(fd)
        raise
    finally:
        for fd in child_ends:
            os.close(fd)
    ends = iter(parent_ends)
    streams = [PipeStream(next(ends), i == 0, f"{name} of process {popen.pid}")
               if spec is subprocess.PIPE else None
               for i, (spec, name) in enumerate(((stdin, "stdin"), (stdout, "stdout"),
                                                 (stderr, "stderr")))]
    return Process(popen, *streams, grace)


_spawner = None


async def _start(argv, stdin, stdout, stderr, cwd, env, grace):
    """``_spawn`` in a spawner OS thread; the caller parks, not interruptibly, on a pipe that
    the spawner closes when done.  An interrupted caller (an interruption point) starts
    nothing; one interrupted meanwhile stops the new child and raises Interrupted."""
    global _spawner
    _interruption_point()
    if _spawner is None:
        _spawner = ThreadPoolExecutor(SPAWNERS, thread_name_prefix="conhook spawner")
    reader, writer = os.pipe()
    outcome = []

    def spawn():
        try:
            outcome.append(_spawn(argv, stdin, stdout, stderr, cwd, env, grace))
        except BaseException as exc:  # noqa: BLE001  (handed to the caller)
            outcome.append(exc)
        finally:
            os.close(writer)

    try:
        _spawner.submit(spawn)
    except BaseException:
        os.close(writer)
        os.close(reader)
        raise
    try:
        await _ExitWait(reader, None, False)
    finally:
        current_kernel().notify_closing(reader)
        os.close(reader)
    result = outcome.pop()  # (the spawner OS thread may hold `spawn`, and so `outcome`, a while yet)
    if isinstance(result, BaseException):
        raise result
    thread = current_thread()
    if thread.interrupt is not None:
        result._close_pipes()
        await result._stop()
        raise interrupted(thread)
    return result


async def open_process(argv, *, stdin=None, stdout=None, stderr=None, cwd=None, env=None,
                       grace=GRACE):
    """``open_process@(argv, *, stdin=None, stdout=None, stderr=None, cwd=None, env=None,
    grace=5.0)``: start a child process and return its ``Process``.

    Each of `stdin`, `stdout`, `stderr` is what ``subprocess.Popen`` takes (None: inherited,
    ``subprocess.PIPE``, ``DEVNULL``, ``STDOUT`` for stderr, a file or an fd); a PIPE becomes a
    stream (``process.stdout.read@()``).  Use it in a ``with`` block: its end closes the pipes
    and stops a child still running (SIGTERM, SIGKILL after `grace` seconds, reaped)."""
    return await _start(argv, stdin, stdout, stderr, cwd, env, grace)


def _interruption_point():
    """An interrupted thread starts no child: it raises Interrupted instead."""
    thread = current_thread()
    if thread.interrupt is not None:
        raise interrupted(thread)


async def _feed(pipe, data):
    try:
        if data:
            await pipe.write(data)
    except BrokenPipeError:
        pass  # the child stopped reading: what it did not take is dropped, as subprocess.run
    finally:
        pipe.close()


async def _drain(pipe):
    chunks = []
    try:
        while True:
            chunks.append(await pipe.read())
    except EOFError:
        return b"".join(chunks)


async def run_process(argv, *, input=None, capture_output=False, check=True, cwd=None,
                      env=None, stdin=None, stdout=None, stderr=None, grace=GRACE):
    """``run_process@(argv, *, input=None, capture_output=False, check=True, cwd=None,
    env=None, grace=5.0)``: run a child to its end; return a ``subprocess.CompletedProcess``.

    `input` (bytes) is written to its stdin, which is then closed; ``capture_output=True``
    collects stdout and stderr as bytes (`stdin`, `stdout`, `stderr` may also be given as to
    ``open_process@``).  With `check` (the default, as trio), a non-zero exit status raises
    ``subprocess.CalledProcessError`` carrying the output.  Interrupted (a timeout, a failing
    sibling, Ctrl-C), it stops the child: SIGTERM, SIGKILL after `grace` seconds, reaped,
    before the ``Interrupted`` goes on."""
    try:
        if input is not None:
            if stdin is not None:
                raise ValueError("run_process@(): give input or stdin, not both")
            stdin = subprocess.PIPE
        if capture_output:
            if stdout is not None or stderr is not None:
                raise ValueError("run_process@(): give capture_output or stdout/stderr, not both")
            stdout = stderr = subprocess.PIPE
        process = await _start(argv, stdin, stdout, stderr, cwd, env, grace)
        try:
            calls = {"returncode": process.wait()}
            if process.stdin is not None:
                calls["stdin"] = _feed(process.stdin, input)
            if process.stdout is not None:
                calls["stdout"] = _drain(process.stdout)
            if process.stderr is not None:
                calls["stderr"] = _drain(process.stderr)
            if len(calls) == 1:
                results = {"returncode": await calls["returncode"]}
            else:
                results = dict(zip(calls, await gather(*calls.values())))
        except BaseException:
            process._close_pipes()
            await process._stop()
            raise
        process._close_pipes()
        returncode, out, err = results["returncode"], results.get("stdout"), results.get("stderr")
        if check and returncode:
            raise subprocess.CalledProcessError(returncode, argv, out, err)
        return subprocess.CompletedProcess(argv, returncode, out, err)
    except BaseException as exc:
        strip_internal_frames(exc)
        raise
