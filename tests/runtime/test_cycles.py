"""No reference cycle keeps a finished program's locals alive (found by tests/stress Ctrl-C).

An exception's traceback holds the frames it went through, and a frame that outlives its run
holds the frames below it (the kernel's loop, bootstrap).  Nothing in those frames or in the
kernel and scopes may hold such an exception, or a listener left in a local of ``main`` stays
open until the next garbage collection.  (Known exception: the exception that ``bootstrap``
itself raises is held by its one-off raiser class, freed by the collector.)
"""
from __future__ import annotations

import gc
import weakref

import pytest

from .helpers import con, prejoining, run


class Resource:
    pass


@pytest.fixture
def no_gc():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_prejoining_functions_locals_are_freed_after_a_child_failed(no_gc):
    refs = []

    async def child():
        await con.idle()
        raise ValueError("child")

    @prejoining
    async def main(scope):
        held = Resource()
        refs.append(weakref.ref(held))
        scope.start(child)
        await con.Event().wait()
    with pytest.raises(ValueError):
        run(main)
    assert refs[0]() is None


def test_an_interrupted_programs_locals_are_freed(no_gc):
    refs = []

    @prejoining
    async def main(scope):
        held = Resource()
        refs.append(weakref.ref(held))
        await con.Event().wait()  # never set: the deadlock interrupts the whole program
    with pytest.raises(con.Deadlock):
        run(main)
    assert refs[0]() is None


def test_locks_and_semaphores_are_freed_without_the_collector(no_gc):
    """A Lock or Semaphore (two in every TLS stream) is no reference cycle: freed by its last
    reference, it leaves the cycle collector nothing, whose passes a server would pay for."""
    async def main():
        lock, sem = con.Lock(), con.Semaphore(1)
        with await lock.hold():
            pass
        with await sem.hold():
            pass
        assert not lock.locked()
        for _ in range(100):
            con.Lock()
            con.Semaphore(2)
    run(main)
    assert gc.collect() == 0


def test_a_finished_program_leaves_the_collector_nothing(no_gc):
    """The kernel, its backend, its wake-up channel and its bookkeeping of threads started from
    outside are freed by reference counting when ``bootstrap`` returns: a program run many
    times (a test suite, a server's request in a fresh scheduler) makes no garbage."""
    async def child():
        await con.sleep(0)

    async def main(scope):
        scope.start(child)
        await con.sleep(0)
    run(prejoining(main))
    assert gc.collect() == 0
