"""``bootstrap``: run a program's root thread, and stop it cleanly on Ctrl-C (docs/spec.md §1.6).

Ctrl-C (SIGINT) interrupts the whole program: every thread unwinds (its ``finally`` blocks
run), then ``bootstrap`` raises a bare ``KeyboardInterrupt``.  The handler is installed only
in the main OS thread, and only if SIGINT still has Python's default handler.  It posts the
interruption to the kernel; when the signal arrives while a thread runs user code (a program
busy in atomic code never reaches a switch) it also raises KeyboardInterrupt right there, which
fails that thread and so unwinds it too.  A second Ctrl-C raises at once, wherever the program
is.

Discussion: the user must see no frame of conhook in the traceback of what ``bootstrap``
raises.  Any ``raise`` inside a Python function adds that function's frame, so ``bootstrap``
is a class: ``__new__`` runs the program and returns its value, or, to raise, an instance of a
one-off subclass whose ``__init__`` is a C callable that raises the exception (``throw`` on an
exhausted generator re-raises its argument as it is; ``raiser`` says how it is reached).
``type.__call__`` runs it after every Python frame of ours has returned, so the traceback starts
at the caller's line.
"""
from __future__ import annotations

import functools
import signal
import sys
import sysconfig
import threading
from os import environ
from types import CoroutineType

from .._reserved_names import CO_COROUTINE
from .cactus_stack import tree
from .kernel import Kernel, refuse_nested_run, state, strip_internal_frames
from .prejoin import carry_over, plain_call
from .slips import explain

# The variables that ask for diagnostics (the module ``diagnostics``, which is imported only
# when one is set: it costs 6 ms).  A test keeps this in step with ``diagnostics.VARIABLES``.
DIAGNOSTICS_VARIABLES = frozenset({"CONHOOK_SCHEDULE_SEED", "CONHOOK_WATCHDOG", "CONHOOK_DEBUG"})


def _exhausted():
    yield


_DEAD = _exhausted()
next(_DEAD, None)
next(_DEAD, None)


def raiser(cls, exc):
    """An instance of a one-off subclass of `cls` whose ``__init__`` raises `exc` from C.

    Returned by ``cls.__new__``, it makes ``cls(...)`` raise `exc` once every Python frame of
    ours has returned (also used by ``ipv4addr``/``ipv6addr``).
    """
    # ``__init__`` is ``str.format``, which takes any arguments (``bootstrap``'s keyword
    # ``loop`` too) and looks ``_raise`` up on its first: a property whose getter raises.
    raising = type("raising", (), {"_raise": property(functools.partial(max, exc, exc, key=_DEAD.throw)),
                                   "__slots__": ()})()
    init = staticmethod(functools.partial("{0._raise}".format, raising))
    sub = type(cls.__name__, (cls,), {"__init__": init, "__slots__": ()})
    return object.__new__(sub)


_STDLIB = sysconfig.get_paths()["stdlib"]


def in_conhook(frame):
    """Whether the signal arrived in conhook's own code (possibly deep in the stdlib it called)."""
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith("conhook."):
            return True
        if not frame.f_code.co_filename.startswith(_STDLIB):
            return False  # user (or third-party) code: a thread is running
        frame = frame.f_back
    return True


def _interrupt_on_signal(frame) -> bool:
    """Interrupt the program for a signal that landed in ``frame``; whether the handler must
    also raise KeyboardInterrupt there."""
    kernel = state.kernel
    if kernel is None:
        return True
    if kernel.sigint:
        kernel.aborting = True  # a second Ctrl-C: stop at once, wherever the program is
        return True
    kernel.sigint = True
    kernel.post(_interrupt_program)
    # A thread is running user code: stop it where it is.  (Between turns of a hosted kernel
    # the host loop runs asyncio's code, which the posted interruption reaches through aio@.)
    return kernel.current is not None and not in_conhook(frame)


class on_interrupt_signal:
    """The handler of a signal that interrupts the program as Ctrl-C does (SIGINT here; the
    runner's SIGTERM handler is a subclass).

    A class, as ``bootstrap`` is: the KeyboardInterrupt it raises where the signal landed is
    raised from C once its frame has returned, so that the traceback of the interrupted code,
    printed by the program itself or by ``bootstrap``, holds no frame of conhook.
    """
    __slots__ = ()

    def __new__(cls, signum, frame):
        return raiser(cls, KeyboardInterrupt()) if _interrupt_on_signal(frame) else None


def _interrupt_program():
    state.kernel.interrupt_program("the program was interrupted (Ctrl-C)")


# The loop that ``bootstrap`` hosts the kernel on when its caller names none: None (standalone),
# or what ``python -m conhook --loop`` asked for.
default_loop = None


def sniffio_local(hosted):
    """sniffio's per-OS-thread state, or None: its ``name`` is "conhook" while con threads run
    (hosted: during each turn, sniffio imported if installed; standalone: while ``bootstrap``
    runs, if the program has imported sniffio by then, as libraries that use it do at import)."""
    if not hosted:
        module = sys.modules.get("sniffio")
        return getattr(module, "thread_local", None)
    try:
        from sniffio import thread_local
    except ImportError:
        return None
    return thread_local


def _run(fn, args, backend=None, loop=None):
    """Run the program; return ("value", v) or ("raise", exception).  `loop` ("asyncio" or
    "uvloop") hosts the kernel on a new event loop of that kind (``hosted``)."""
    refuse_nested_run()  # before making a kernel: nothing to close
    if loop is not None:
        from . import hosted
    kernel = new_kernel(backend)
    code = getattr(fn, "__code__", None)
    try:
        if code is not None and code.co_flags & CO_COROUTINE:
            coro = fn(*args)
        else:  # an ordinary function: tree() and messages name it, not the wrapper
            coro = plain_call(fn, args, {})
            coro.__name__ = getattr(fn, "__name__", coro.__name__)
            coro.__qualname__ = getattr(fn, "__qualname__", coro.__qualname__)
    except BaseException:
        kernel.close()
        raise
    previous = previous_wakeup_fd = None
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        previous = signal.signal(signal.SIGINT, on_interrupt_signal)
        # Without this, a Ctrl-C that lands after the last check for signals and before the
        # poll blocks would wait for the poll to return (the next timer, or never).
        previous_wakeup_fd = signal.set_wakeup_fd(kernel.signal_wakeup_fd(), warn_on_full_buffer=False)
    # Discussion: the root's exception must not stay reachable from this frame or the
    # kernel.  Its traceback holds the program's frames, and a frame that outlives its run
    # holds the frames below it (f_back: the kernel's loop, then this one); a local or
    # kernel.outcome holding the exception would close a cycle that keeps every local of
    # those frames (a listener, its sockets) open until the next garbage collection.  So
    # the outcome goes from the kernel straight into _conclude, through a list emptied
    # on the way.
    outcome = []
    sniffio = sniffio_local(loop is not None)
    try:
        try:
            if loop is not None:
                outcome.append(hosted.run(kernel, coro, loop, sniffio))
            elif sniffio is not None:
                library, sniffio.name = sniffio.name, "conhook"
                try:
                    outcome.append(kernel.run(coro))
                finally:
                    sniffio.name = library
            else:
                outcome.append(kernel.run(coro))
            kernel.outcome = coro = None
        finally:
            if previous is not None:
                signal.set_wakeup_fd(previous_wakeup_fd)
                signal.signal(signal.SIGINT, previous)
            kernel.close()
    except KeyboardInterrupt:
        if kernel.aborting or not kernel.done:
            kernel.abandon()  # a second Ctrl-C: the threads are closed where they are
        return "raise", KeyboardInterrupt()
    return _conclude(kernel, *outcome.pop())


def new_kernel(backend=None):
    """A kernel with the hooks that reach above it: the cactus stack for its Deadlock message,
    and the diagnostics the environment asks for."""
    kernel = Kernel(backend)
    kernel.describe_threads = tree
    if not DIAGNOSTICS_VARIABLES.isdisjoint(environ):
        from .diagnostics import configure
        configure(kernel)
    return kernel


def _conclude(kernel, value, exc):
    """What bootstrap returns or raises, once the root thread has finished."""
    if kernel.deadlock is not None:
        if exc is not None:
            carry_over(exc, kernel.deadlock)
        return "raise", kernel.deadlock
    if kernel.sigint:
        if isinstance(exc, KeyboardInterrupt):
            return "raise", exc
        interrupt = KeyboardInterrupt()
        if exc is not None:
            carry_over(exc, interrupt)  # what failed while the program unwound
        return "raise", interrupt
    if exc is not None:
        strip_internal_frames(exc)
        return "raise", explain(exc)
    return "value", value


def _not_a_function(fn):
    if type(fn) is CoroutineType:
        name = fn.__qualname__
        fn.close()  # it will never run: no "never awaited" warning on top of this error
        return TypeError(f"con.bootstrap() takes the function to run, not a call object: write "
                         f"con.bootstrap({name}) (or con.bootstrap({name}, arg, ...)), "
                         f"not con.bootstrap({name}())")
    return TypeError(f"con.bootstrap() takes the function to run (and its arguments), not {fn!r}")


class bootstrap:
    """``bootstrap(fn, *args)``: run ``fn(*args)`` as the root thread; return its value.

    It returns when the root thread has finished (and with it, by prejoin, every thread it
    started), or raises the root thread's exception.  Ctrl-C interrupts every thread; when all
    have unwound, ``bootstrap`` raises ``KeyboardInterrupt``.  If no thread can ever make
    progress it raises ``Deadlock`` with the cactus stack.  Calling it while a scheduler runs
    in the same OS thread raises ``RuntimeError``.

    ``loop="asyncio"`` or ``loop="uvloop"`` runs the scheduler as a guest of a new event loop
    of that kind, so that con threads can run asyncio code with ``con.aio@(awaitable)`` and
    asyncio code can await con functions with ``con.from_aio(fn, *args)`` (docs/hosted.md).
    """
    __slots__ = ()

    def __new__(cls, fn, /, *args, loop=None):
        if not callable(fn):
            return raiser(cls, _not_a_function(fn))
        if loop is None:
            loop = default_loop
        if loop is not None:
            from .hosted import loop_factory
            try:
                loop_factory(loop)  # an unknown or missing loop fails before anything starts
            except (ValueError, ImportError) as exc:
                return raiser(cls, exc)
        kind, result = _run(fn, args, loop=loop)
        if kind == "raise":
            return raiser(cls, result)
        return result
