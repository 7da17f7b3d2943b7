"""Threads and their interruption (docs/spec.md §1.3, §1.4).

A thread is a coroutine plus the few facts the kernel needs about it, and its own
``contextvars.Context`` (``context``), in which the kernel runs every step of the coroutine: a copy
of its creator's context when it was started (``bootstrap``: of its caller's), so that what one
thread sets in a context variable no other thread sees (docs/spec.md §1.2).  It belongs to the scope
that started it (``scope``; None for the root thread) and is a key of that scope's ``children``
dict, so that finishing forgets it in O(1) and interrupting walks the children in the order
they were started, which keeps runs deterministic.

Interruption is level-triggered and scoped.  ``thread.interrupt`` is the source that
interrupted the thread (a prejoin scope, a ``timeout`` block, or the program) or None.  A
source is one of the thread's own scopes (``thread.scopes``, a stack of the prejoin scopes
and timeout blocks it has open) or lies outside the thread.  Outer sources win: a thread
interrupted by its own timeout and then by its parent's scope stays interrupted after the
timeout block has been left.  Interrupting a thread interrupts every thread started by the
scopes it has open above the source, and theirs, down the whole subtree, however deep (without
recursion: see ``_interrupt_subtrees``).
"""
from __future__ import annotations

from .traps import IDLE, interrupted

# The threads, of every scheduler in the process, whose ``interrupt`` is set.  It is empty
# nearly always, so an operation that can complete at once (a stream's ``read@``/``write@``)
# is an interruption point for the price of one test of this set, without finding its thread.
# ``set_interrupt``/``clear_interrupt`` keep it in step with ``Thread.interrupt``; the kernel
# forgets a thread when it finishes.  (Adding and discarding are atomic under the GIL.)
interrupted_threads = set()


def set_interrupt(thread, source):
    thread.interrupt = source
    interrupted_threads.add(thread)


def clear_interrupt(thread):
    thread.interrupt = None
    interrupted_threads.discard(thread)


class Thread:
    __slots__ = ("coro", "context", "scope", "scopes", "interrupt", "parked_on", "pending", "value")

    def __init__(self, coro, context, scope):  # Scope.start inlines this: keep the two in step
        self.coro = coro
        self.context = context
        self.scope = scope
        self.scopes = self.interrupt = self.parked_on = self.pending = self.value = None

    @property
    def name(self):
        return thread_name(self)

    def __repr__(self):
        return f"<conhook thread {thread_name(self)}>"


def thread_name(thread):
    """The name of the function a thread runs, as shown in notes and errors."""
    coro = thread.coro
    return getattr(coro, "__qualname__", None) or repr(coro)


def _rank(thread, source):
    """How far out `source` is for `thread`: its index in the thread's scopes, or -1 outside."""
    scopes = thread.scopes
    if scopes:
        for i, scope in enumerate(scopes):
            if scope is source:
                return i
    return -1


def interrupt(kernel, thread, source, above=0):
    """Interrupt `thread` on behalf of `source`, and the threads of its scopes from `above` on.

    `above` is 0 when `source` lies outside the thread, else the index just above `source` in
    ``thread.scopes``.  A parked thread whose wait is interruptible is woken with Interrupted;
    a wait that is not is told (``Trap.interrupting``) and ends when it will.
    """
    _interrupt_subtrees(kernel, [(thread, above)], source)


def interrupt_threads(kernel, threads, source):
    """Interrupt each of `threads` (the threads of one scope) from outside, and their subtrees."""
    _interrupt_subtrees(kernel, [(thread, 0) for thread in reversed(threads)], source)


def _interrupt_subtrees(kernel, stack, source):
    """Interrupt the (thread, above) pairs of `stack`, last first, and the threads below them.

    Depth first, each scope's threads in the order they were started (the order a recursion
    would take, which keeps runs deterministic), but with a stack of its own: a chain of
    threads, each started by the one before, may be as deep as memory allows.  Finished threads
    (no coroutine) are passed over; interrupting wakes threads but runs none, so no scope
    changes while this walks.
    """
    while stack:
        thread, above = stack.pop()
        if thread.coro is None:
            continue
        current = thread.interrupt
        if current is not None and (current is source or _rank(thread, current) <= above - 1):
            continue  # already interrupted by this source or by one further out
        set_interrupt(thread, source)
        trap = thread.parked_on
        if trap is not None:
            if trap.interruptible:
                trap.abort(kernel, thread)
                thread.pending = interrupted(thread)
                if trap is IDLE:
                    thread.parked_on = None  # it waits its turn in the ready queue already
                else:
                    kernel.wake(thread)
            else:
                trap.interrupting(kernel, thread)  # it ends the wait itself, in its own time
        scopes = thread.scopes
        if scopes:
            for scope in reversed(scopes[above:]):
                children = scope.children  # () for a timeout block: it starts no threads
                if children:
                    stack.extend((child, 0) for child in reversed(children))
