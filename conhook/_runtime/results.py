"""Collecting the results of threads: ``gather``, ``race``, ``as_completed`` (docs/spec.md §3).

Each takes call objects (``f(x)``: a non-atomic function called without ``@``, or any other
awaitable), runs each in its own thread of a prejoin scope of its own, and so keeps prejoin's
guarantees (docs/spec.md §1.3): the first failure interrupts the other calls, is raised
unwrapped once they have all finished, later failures are attached to it, and no thread
outlives the helper's call.

* ``gather@(f(1), g(2))``: the results in the order of the calls (``asyncio.gather``).
* ``race@(f(1), g(2))``: the result of the call that finishes first; the others are
  interrupted and waited for.  A call that fails first is a failure, as prejoin has it (not a
  loss in the race): it is raised.
* ``as_completed@(queue, f(1), g(2))``: puts each result into `queue` as its call finishes,
  then closes the queue; a consumer reads them with ``queue.get@(default=...)``.  Started
  with ``sibling`` beside the consumer.  A consumer that has had enough closes the queue:
  the calls still running are then interrupted and ``as_completed`` returns.

The calls' threads carry the calls' names (in notes, tracebacks and ``con.tree()``).
"""
from __future__ import annotations

from .kernel import current_kernel, strip_internal_frames
from .prejoin import isawaitable, prejoin
from .primitives import QueueClosed
from .threads import interrupt

__all__ = ["gather", "race", "as_completed", "THREAD_WRAPPERS"]


def _check(calls, helper):
    """TypeError unless every call is awaitable; the call objects are closed then (unrun)."""
    for call in calls:
        if not isawaitable(call):
            for other in calls:
                close = getattr(other, "close", None)
                if isawaitable(other) and close is not None:
                    close()
            raise TypeError(
                f"{helper}@() takes call objects such as f(x) (a non-atomic function called "
                f"without @), not {call!r}; to run an ordinary function, wrap it: "
                f"to_thread(fn, x) for a blocking one")


async def _run(calls, each, outcome, *args):
    """Run ``each(index, call, scope, *args)`` in a thread per call, in one prejoin scope (the
    compiled form of a function that starts siblings, docs/spec.md §1.3), named as its call;
    then return ``outcome()``.

    It is the only coroutine here: the helpers are plain functions returning it, so that a
    failure's traceback holds the user's frames only (docs/spec.md §1.6)."""
    try:
        __con_scope__ = scope = prejoin()  # (the name con.tree() finds a frame's scope by)
        try:
            for index, call in enumerate(calls):
                scope.start(each, index, call, scope, *args)
                coro = scope.children[-1].coro
                coro.__qualname__ = getattr(call, "__qualname__", coro.__qualname__)
            if each is _deliver and calls:
                scope.start(_until_closed, args[0], scope)
        except BaseException as exc:
            if await __con_scope__.failed(exc):
                raise
        finally:
            await scope.join()
    except BaseException as exc:
        strip_internal_frames(exc)
        raise
    return outcome()


class _Finished:
    """The interruption source for the calls left running once the helper has what it wants."""
    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason

    def interrupt_children(self, kernel, source):
        pass


def stop_the_others(scope, reason):
    """Interrupt every other running thread of `scope` (not a failure: see ``Scope.child_finished``)."""
    kernel = current_kernel()
    source = _Finished(reason)
    for thread in scope.running():
        if thread is not kernel.current:
            interrupt(kernel, thread, source, 0)


def _named(coro, name):
    """`coro` named `name` in con.tree() (its thread's chain reads ``main - gather``)."""
    coro.__name__ = coro.__qualname__ = name
    return coro


def gather(*calls):
    """``gather@(f(1), g(2), ...)``: run each call in its own thread; return their results as
    a list, in the order of the calls.  The first failure interrupts the rest and is raised
    once they have finished (prejoin's rule)."""
    _check(calls, "gather")
    results = [None] * len(calls)
    return _named(_run(calls, _store, results.copy, results), "gather")


async def _store(index, call, scope, results):
    results[index] = await call


def race(*calls):
    """``race@(f(1), g(2), ...)``: run each call in its own thread; return the result of the
    first to finish, once the others have been interrupted and have finished.  A call that
    fails before any returns is raised (prejoin's rule), as is a failure of a loser while it
    unwinds."""
    _check(calls, "race")
    if not calls:
        raise ValueError("race@() needs at least one call")
    won = []
    return _named(_run(calls, _first, won.pop, won), "race")


async def _first(index, call, scope, won):
    value = await call
    if not won:
        won.append(value)
        stop_the_others(scope, "another call of race@() finished first")


def as_completed(queue, *calls):
    """``as_completed@(queue, f(1), g(2), ...)``: run each call in its own thread, put each
    result into `queue` as its call finishes, then close the queue.

    Start it with ``sibling`` and consume with ``while (r := queue.get@(default=None)) is not
    None:``.  Closing the queue stops it early: the calls still running are interrupted."""
    _check(calls, "as_completed")
    left = [len(calls)]
    return _named(_run(calls, _deliver, queue.close, queue, left), "as_completed")


async def _deliver(index, call, scope, queue, left):
    value = await call
    try:
        await queue.put(value)
    except QueueClosed:
        return  # the consumer has had enough: _until_closed stops the other calls
    left[0] -= 1
    if not left[0]:
        stop_the_others(scope, "every call of as_completed@() has finished")  # _until_closed


async def _until_closed(queue, scope):
    """as_completed's watcher: the consumer closing the queue interrupts the calls left."""
    await queue.wait_closed()
    stop_the_others(scope, "the consumer closed the queue of as_completed@()")


# The coroutines that only carry a call into its thread: con.tree() shows the call instead.
THREAD_WRAPPERS = frozenset(fn.__code__ for fn in (_store, _first, _deliver))
