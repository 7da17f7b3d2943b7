"""``con.from_thread(fn, *args)``: an OS thread calls into a scheduler and waits for the answer.

Two ways in, as trio's ``from_thread.run``:

* In a ``to_thread@`` worker (no token): the call is handed to the conhook thread waiting in
  ``to_thread@``, which runs it as one of its own calls (``worker_threads._Job.serve``), so its
  interruptions and timeouts apply to it and ``tree()`` draws it below ``to_thread``.  If that
  thread is interrupted while ``fn`` runs, ``fn`` sees ``Interrupted`` at its next non-atomic
  call and, unless it catches it, the worker's ``from_thread`` raises it; the caller then leaves
  ``to_thread@`` at once.  Once the caller has left, ``from_thread`` in that worker raises
  ``Interrupted`` without running anything (the call it was serving is gone).
* In any other OS thread, with ``token=`` (``con.current_token()``, taken in the scheduler's
  own thread): ``fn`` runs as a new conhook thread of that scheduler, in a copy of the calling
  OS thread's context (``TokenCalls``).  It belongs to no function's prejoin scope: it is a
  thread started from outside (``outside_threads``), drawn by ``tree()`` as ``from_thread -
  fn``; when the root thread finishes, these threads are interrupted and waited for before
  ``bootstrap`` returns, so nothing outlives the scheduler.  After that, ``from_thread`` with the token raises
  ``RuntimeError``.  While a token is alive the scheduler counts it as a source of wake-ups, so
  a program waiting for such a call is not declared deadlocked.

Either way ``fn`` may be non-atomic (it is called, and awaited) or ordinary (it is called in the
scheduler's thread); its result comes back to the OS thread, and its exception is raised there
with the user's frames only (``from_thread`` is a class for that, as ``bootstrap`` is).  Called
in a scheduler's own OS thread it raises ``RuntimeError``: it would block the scheduler that
must run ``fn``.
"""
from __future__ import annotations

import threading
import weakref
from contextvars import copy_context

from .bootstrap import raiser
from .cactus_stack import hide
from .errors import Interrupted
from .kernel import current_kernel, state, strip_internal_frames
from .prejoin import isawaitable
from .threads import Thread
from .worker_threads import caller_gone, worker_local


class _Request:
    """One call of ``from_thread``: what to run, and its outcome for the waiting OS thread."""
    __slots__ = ("fn", "args", "context", "value", "exc", "_done")

    def __init__(self, fn, args):
        self.fn, self.args = fn, args
        self.context = None
        self.value = self.exc = None
        self._done = threading.Lock()
        self._done.acquire()

    def finish(self, value, exc):
        if self._done.locked():  # once: a caller leaving may race a call that finished
            self.value, self.exc = value, exc
            self.fn = self.args = self.context = None
            self._done.release()

    def wait(self):
        self._done.acquire()


class TokenCalls:
    """The calls that OS threads make with ``from_thread(..., token=)`` (``kernel.outside.calls``).

    Each runs as a thread started from outside (``outside_threads``), this its scope.  Requests
    are queued under a lock and started in the kernel's thread; once the root thread has
    finished or the kernel is closed (``kernel.outside`` closes), new ones are refused and the
    queued ones fail, so that no OS thread waits for a call that will never run.
    """
    __slots__ = ("kernel", "_lock", "_queued", "_closed", "token", "__weakref__")

    def __init__(self, kernel):
        self.kernel = kernel
        self._lock = threading.Lock()
        self._queued = []
        self._closed = False
        self.token = None  # a weak reference to the live Token, if any
        kernel.outside.on_close(self._close)

    def submit(self, request):
        """In an OS thread: queue `request` for the kernel; RuntimeError once it has finished."""
        with self._lock:
            if self._closed:
                raise RuntimeError(_FINISHED)
            self._queued.append(request)
        self.kernel.post(self._start_queued)

    def _start_queued(self):
        with self._lock:
            queued, self._queued = self._queued, []
        for request in queued:
            self.kernel.outside.start(self.kernel, Thread(_guest(request), request.context, self), "from_thread")

    def child_returned(self, kernel, thread):
        kernel.outside.finished(kernel, thread)

    def child_finished(self, kernel, thread, exc):
        kernel.outside.finished(kernel, thread)  # (_guest hands every outcome over itself)

    def _close(self):
        with self._lock:
            self._closed = True
            queued, self._queued = self._queued, []
        for request in queued:
            request.finish(None, RuntimeError(_FINISHED))

    def _token_dropped(self):
        self.kernel.outside_waits -= 1


_FINISHED = ("con.from_thread(..., token=): the scheduler of this token has finished (its root "
             "thread returned), so it runs no more calls")


async def _guest(request):
    """The body of a token's thread: run the call and hand its outcome to the OS thread."""
    try:
        value = request.fn(*request.args)
        if isawaitable(value):
            value = await value
    except GeneratorExit:
        request.finish(None, Interrupted("the scheduler was stopped"))
        raise
    except BaseException as exc:  # noqa: BLE001  (its failure is the OS thread's to handle)
        strip_internal_frames(exc)
        request.finish(None, exc)
    else:
        request.finish(value, None)


hide(_guest)  # tree() draws the call: from_thread - fn - ...


class Token:
    """The scheduler that ``con.current_token()`` was called in, for ``from_thread(..., token=)``
    in OS threads that conhook did not start (as trio's ``TrioToken``)."""
    __slots__ = ("_calls", "__weakref__")

    def __init__(self, calls):
        self._calls = calls

    def __repr__(self):
        return "<con token of a scheduler, for con.from_thread(..., token=)>"


def current_token():
    """``con.current_token()``: the running scheduler's token, to give to an OS thread that
    will call ``con.from_thread(fn, *args, token=token)``.  Called in the scheduler's thread."""
    kernel = current_kernel()
    calls = kernel.outside.calls
    if calls is None:
        calls = kernel.outside.calls = TokenCalls(kernel)
    token = calls.token() if calls.token is not None else None
    if token is None:
        token = Token(calls)
        calls.token = weakref.ref(token)
        kernel.outside_waits += 1  # a live token may bring a call at any time
        weakref.finalize(token, kernel.post, calls._token_dropped)
    return token


class from_thread:
    """``con.from_thread(fn, *args, token=None)``: in an OS thread, run ``fn(*args)`` in a
    conhook scheduler and return its result (or raise its exception) here.

    In a ``to_thread@`` worker, ``fn`` runs in the conhook thread that called ``to_thread@``;
    elsewhere pass ``token=`` (``con.current_token()``) and ``fn`` runs as a new conhook thread
    of that scheduler.  The OS thread blocks until ``fn`` is done.
    """
    __slots__ = ()

    def __new__(cls, fn, /, *args, token=None):
        request = _Request(fn, args)
        exc = _submit(request, token)
        if exc is None:
            request.wait()
            exc = request.exc
            if exc is None:
                return request.value
        request.exc = None
        return raiser(cls, exc)


def _submit(request, token):
    """Hand `request` to its scheduler; or the exception that says why it cannot go."""
    if not callable(request.fn):
        return TypeError(f"con.from_thread() takes the function to run (and its arguments), "
                         f"not {request.fn!r}")
    if state.kernel is not None:
        return RuntimeError(
            "con.from_thread() was called in the OS thread of a conhook scheduler: it would block "
            "the scheduler that must run the call; call the function directly there (fn@(...))")
    if token is not None:
        if not isinstance(token, Token):
            return TypeError(f"con.from_thread(..., token={token!r}): the token must come from "
                             f"con.current_token(), called in the scheduler's thread")
        request.context = copy_context()
        try:
            token._calls.submit(request)
        except RuntimeError as exc:
            return exc
        return None
    job = getattr(worker_local, "job", None)
    if job is None:
        return RuntimeError(
            "con.from_thread() was called in an OS thread that conhook did not start: pass "
            "token=con.current_token(), taken in the scheduler's thread and given to this one "
            "(a to_thread@ worker needs no token)")
    if not job.ask(request):
        return caller_gone()
    return None
