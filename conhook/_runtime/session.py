"""A session: one long-lived kernel hosted on a running asyncio loop, whose inputs (``%%con``
cells in Jupyter) run as its threads (docs/interactive.md, "Hosted on the kernel's loop").

* The session's root thread waits on an asyncio Future (a pending wake-up, as ``aio@``)
  until ``close``; it owns the **background scope**, where the top-level ``sibling`` threads of
  an input compiled with ``background`` (``%%con --background``) run on after the input has
  ended, as the Tasks ``asyncio.create_task`` leaves running.  A background thread that fails
  does not touch the others, nor any input: its traceback is printed to stderr at once (as
  asyncio reports a Task's exception that nobody retrieved, but when it happens).  ``stop``
  interrupts background threads and waits until they have finished (their ``finally`` blocks
  run); ``close`` stops them all, then ends the kernel.
* ``run(fn)`` runs one input as a new thread and waits for it, as ``bootstrap`` waits for its
  root: its own ``sibling`` threads are its prejoin scope's, as ever.  Ctrl-C (SIGINT, *Interrupt
  kernel*) interrupts the running inputs only, then ``run`` raises ``KeyboardInterrupt``; a signal
  that lands in an input's atomic code raises ``KeyboardInterrupt`` right there, as under
  ``bootstrap``.  Background threads keep running.
* Ctrl-C seen by another OS thread (the REPL's console, ``interrupt_from``) interrupts the inputs
  through the kernel, and raises ``KeyboardInterrupt`` in the loop's OS thread only where it
  lands in the own code of an input's thread, never in conhook's, asyncio's or the kernel's (which
  it would leave half-done, or stop the loop: the REPL hung so).  The place is exact because the
  raiser holds the GIL: the loop's OS thread stands still, and the exception is delivered where
  it stands (or where the C call it waits in returns), which the raiser checks first and makes
  sure it has not left before raising.  An input that has not reached its own code yet does not
  run it: ``CtrlC`` is marked before the raiser looks, and read where the GIL cannot change hands
  before the input's first instruction.
* Deadlock: an input is deadlocked when no thread is ready and nothing but a later input could
  wake one (no timer, I/O, worker thread or asyncio Task is awaited); it is interrupted and
  ``run`` raises ``Deadlock`` with the cactus stack.  The background threads, stuck too, are left
  alone: a later input may still set them free.
* Between turns no kernel is this OS thread's current one, so ordinary code of the host (a plain
  cell) sees none, and may call ``bootstrap`` as before.
"""
from __future__ import annotations

import asyncio
import ctypes
import signal
import sys
import threading
import traceback
from contextvars import copy_context

from .._reserved_names import CO_COROUTINE
from .aio import AwaitedThread, aio
from .cactus_stack import hide, tree
from .bootstrap import in_conhook, new_kernel, raiser, sniffio_local
from .errors import Deadlock, Interrupted
from .hosted import Host
from .kernel import state, strip_internal_frames
from .prejoin import Scope, carry_over
from .slips import explain
from .threads import Thread, interrupt, interrupt_threads, thread_name
from .traps import DONE


class _Cause:
    """The source of an interruption that a session delivers (reason: what ``Interrupted`` says)."""
    __slots__ = ("reason", "error")

    def __init__(self, reason, error=None):
        self.reason, self.error = reason, error  # error: what ``run`` raises for it


_CTRL_C = _Cause("the input was interrupted (Ctrl-C)")
_CANCELLED = _Cause("the asyncio Task running the input was cancelled")
_STOPPED = _Cause("it was stopped (a background thread of the session)")


class Background(Scope):
    """The session's scope of background threads, owned by its root thread."""
    __slots__ = ("stopping",)

    def __init__(self, kernel, owner):
        super().__init__(kernel, owner)
        self.stopping = []  # (threads, Future): ``Session.stop`` waits until they have finished

    async def failed(self, exc):
        return True  # the input's own failure: its background threads are not touched

    def join(self):
        return DONE  # an input does not wait for its background threads

    def child_finished(self, kernel, thread, exc):
        if exc is not None and not (thread.interrupt is not None and isinstance(exc, Interrupted)):
            print(f"conhook: background thread {thread_name(thread)} failed:", file=sys.stderr)
            traceback.print_exception(explain(exc), file=sys.stderr)
        self._leave(kernel, thread)

    def _leave(self, kernel, thread):
        super()._leave(kernel, thread)
        for entry in list(self.stopping):
            threads, future = entry
            if all(each.coro is None for each in threads):
                self.stopping.remove(entry)
                if not future.done():
                    future.set_result(None)

    def wait_all(self):
        """Await: every background thread has finished (the root thread's, at close)."""
        return Scope.join(self)


class CtrlC:
    """One input's Ctrl-C as another OS thread sees it (``Session.outcome``, ``interrupt_from``)."""
    __slots__ = ("pressed",)

    def __init__(self):
        self.pressed = False


class _Input(AwaitedThread):
    """The scope of an input's thread: it tells ``Session.run``, which awaits it."""
    __slots__ = ("session", "cause", "request")

    def __init__(self, session, request):
        super().__init__(session.loop)
        self.session = session
        self.request = request
        self.cause = None

    @property
    def background(self):
        return self.session.background  # what an input compiled with ``background`` opens

    @property
    def reason(self):
        return self.cause.reason

    def _leave(self, kernel, thread, exc):
        self.session.inputs.discard(self)
        super()._leave(kernel, thread, exc)

    def stop(self, cause):
        if self.cause is None and self.thread.coro is not None:
            self.cause = cause
            interrupt(self.session.kernel, self.thread, self, 0)


class _SessionHost(Host):
    """A host whose kernel is this OS thread's current one only during its turns."""
    __slots__ = ()

    def turn(self):
        state.kernel = self.kernel
        try:
            super().turn()
        finally:
            state.kernel = None


async def _runs(call, fn):
    """An input thread's coroutine: ``fn()`` of con code, its value kept for ``Session.run``."""
    coro = fn()
    # No check for a GIL switch between this test and the first instruction of fn's (a
    # CtrlC marked later finds the loop's OS thread in fn's code): see the module docstring.
    if call.request.pressed:
        coro.close()
        raise KeyboardInterrupt
    call.value = await coro


async def _runs_plain(call, fn):
    """The same for input without con syntax, an ordinary function (named as it: ``<module>``)."""
    if call.request.pressed:
        raise KeyboardInterrupt
    call.value = fn()


hide(_runs)  # tree() draws an input as bootstrap - <module> - ...

_SET_ASYNC_EXC = ctypes.pythonapi.PyThreadState_SetAsyncExc
_KEYBOARD_INTERRUPT = ctypes.py_object(KeyboardInterrupt)


def _raise_in_input(kernel, ident):
    """Raise KeyboardInterrupt in OS thread `ident`, which runs `kernel`'s turns, if it stands in
    the own code of an input's thread (not a background thread's); whether it did.

    Called holding the GIL, so that OS thread stands still, except where this one lets the GIL go
    (after an instruction that calls): the frame it stands in is checked, then found to be still
    the innermost, at the same instruction, just before the raise, with no call in between.  If
    it has moved meanwhile (the GIL changed hands during the look), it is looked at again.
    """
    frames = sys._current_frames
    thread = ctypes.c_ulong(ident)
    for _ in range(100):  # (a bound, though a look that the GIL interrupts is rare)
        frame = frames().get(ident)
        if frame is None:
            return False
        at = frame.f_lasti
        if not _of_an_input(kernel.current) or in_conhook(frame):
            return False  # the kernel interrupts the input at its next switch point
        if frames().get(ident) is frame and frame.f_lasti == at:
            _SET_ASYNC_EXC(thread, _KEYBOARD_INTERRUPT)  # (no call since the test)
            return True
    return False


def _of_an_input(thread):
    """Whether `thread` is an input's, or started by one in a function it called (a top-level
    sibling's thread is the session's: background)."""
    while thread is not None:
        scope = thread.scope
        if isinstance(scope, _Input):
            return True
        thread = None if isinstance(scope, Background) else getattr(scope, "owner", None)
    return False


class Session:
    """One hosted kernel on the running loop, for the inputs of an interactive session."""

    def __init__(self, loop):
        self.loop = loop
        self.kernel = kernel = new_kernel()
        kernel.on_block = self._on_block
        self.inputs = set()
        self.background = None
        self.closing = loop.create_future()
        kernel.start(self.session())
        state.kernel = None  # (current during turns only: _SessionHost)
        self.host = _SessionHost(kernel, loop, sniffio_local(True))
        self.host.start()

    async def session(self):
        """The root thread: it owns the background scope (tree(): bootstrap - session - ...)."""
        kernel = self.kernel
        root = kernel.current
        self.background = Background(kernel, root)
        root.scopes = [self.background]
        try:
            await aio(self.closing)
        finally:
            interrupt_threads(kernel, self.background.children, _STOPPED)
            await self.background.wait_all()

    # -- inputs ------------------------------------------------------------------------------

    async def outcome(self, fn, request=None):
        """``run``, as (value, exception): an asyncio Task must not raise KeyboardInterrupt or
        SystemExit, which stop its loop (the REPL runs its inputs so).  `request`: the input's
        ``CtrlC``, for ``interrupt_from`` (a Ctrl-C may come before the input has started)."""
        try:
            return await self.run(fn, request), None
        except BaseException as exc:  # noqa: BLE001  (handed to the caller, in its OS thread)
            return None, exc

    async def run(self, fn, request=None):
        """Run ``fn()`` as an input: a new thread of the session; its value, or raise."""
        if self.closing.done():
            raise RuntimeError("this conhook session has been closed")
        call = _Input(self, CtrlC() if request is None else request)
        code = getattr(fn, "__code__", None)
        runs = _runs if code is not None and code.co_flags & CO_COROUTINE else _runs_plain
        call.thread = thread = Thread(runs(call, fn), copy_context(), call)
        name = getattr(fn, "__qualname__", None)
        if type(name) is str:
            thread.coro.__qualname__ = thread.coro.__name__ = name
        self.inputs.add(call)
        self.kernel.outside.start(self.kernel, thread, "bootstrap")  # (tree(): a program of its own)
        self.host.schedule()
        previous = self._catch_sigint()
        try:
            while True:
                try:
                    await asyncio.shield(call.future)
                    break
                except asyncio.CancelledError:
                    if call.future.done():
                        break
                    call.stop(_CANCELLED)
                    self.host.schedule()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        exc, call.exc = call.exc, None
        cause = call.cause
        if cause is not None and (exc is None or isinstance(exc, Interrupted)):
            if cause is _CANCELLED:
                raise asyncio.CancelledError()
            error = KeyboardInterrupt() if cause is _CTRL_C else cause.error
            if exc is not None:
                carry_over(exc, error)
            raise error
        if exc is not None:
            strip_internal_frames(exc)
            raise explain(exc)
        return call.value

    def _catch_sigint(self):
        """While inputs run, SIGINT interrupts them (not the host loop); the handler it replaced."""
        if threading.current_thread() is not threading.main_thread() or len(self.inputs) > 1:
            return None
        session = self

        class on_sigint:
            __slots__ = ()

            def __new__(cls, signum, frame):
                kernel = session.kernel
                if kernel.current is not None and not in_conhook(frame):
                    return raiser(cls, KeyboardInterrupt())  # atomic code of a thread: stop it here
                kernel.post(session._interrupt_inputs)
                return None

        return signal.signal(signal.SIGINT, on_sigint)

    def interrupt_from(self, ident, request):
        """Ctrl-C seen by another OS thread (the REPL's console, in its SIGINT handler) while the
        input of `request` (its ``CtrlC``) runs in the OS thread `ident` (the loop's): interrupt
        the inputs through the kernel, and raise KeyboardInterrupt in that OS thread if it
        stands in the own code of an input's thread (module docstring)."""
        request.pressed = True
        _raise_in_input(self.kernel, ident)
        self.kernel.post(self._interrupt_inputs)

    def _interrupt_inputs(self):
        for call in list(self.inputs):
            call.stop(_CTRL_C)

    def _on_block(self):
        """Nothing is ready: if only a later input could wake a thread, the inputs are deadlocked."""
        kernel = self.kernel
        if (self.inputs and not kernel.timers and kernel.outside_waits == 1  # (the root's own wait)
                and not (kernel.workers_busy or kernel.posted or kernel.awaits_io())):
            stuck = [call for call in self.inputs if call.cause is None]
            if stuck:
                message = ("deadlock: no conhook thread of this input can make progress (none is "
                           "ready, no I/O, timer, worker thread or asyncio Task is awaited). The "
                           "threads and where they wait:\n" + tree(kernel))
                for call in stuck:
                    call.stop(_Cause("deadlock: no thread could make progress", Deadlock(message)))
        return None

    # -- background threads ------------------------------------------------------------------

    def background_threads(self):
        """The background threads that have not finished, in the order they were started."""
        return [] if self.background is None else self.background.running()

    def stop_now(self, threads):
        """Interrupt `threads` (background threads) without waiting for them."""
        interrupt_threads(self.kernel, threads, _STOPPED)
        self.host.schedule()

    async def stop(self, threads=None):
        """Interrupt `threads` (default: every background thread) and wait until they have finished."""
        threads = [thread for thread in (self.background_threads() if threads is None else threads)
                   if thread.coro is not None]
        if not threads:
            return
        finished = self.loop.create_future()
        self.background.stopping.append((threads, finished))
        interrupt_threads(self.kernel, threads, _STOPPED)
        self.host.schedule()
        await asyncio.shield(finished)

    async def close(self):
        """Stop the background threads and end the kernel."""
        if not self.closing.done():
            self.closing.set_result(None)
        await asyncio.shield(self.host.finished)
        self.host.close()
        self.kernel.close()

    def abandon(self):
        """The loop will not run again (the interpreter exits): close every thread where it is
        (``finally`` blocks run; a non-atomic call in one raises), then the kernel."""
        if self.host.finished.done():
            return
        state.kernel = self.kernel
        try:
            self.kernel.abandon()
        finally:
            state.kernel = None
            self.host.close()
            self.kernel.close()
