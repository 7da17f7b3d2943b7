"""sibling and prejoin (docs/spec.md §1.2, §1.3): the expanded form the compiler emits, by hand and via a helper."""
from __future__ import annotations

import functools
import os
import traceback
import types

import pytest


from .helpers import __con__, con, prejoining, run


async def child(log, name, switches=1, fail=None):
    for _ in range(switches):
        await con.idle()
    if fail is not None:
        log.append(f"{name} fails")
        raise fail
    log.append(f"{name} done")


def test_hand_expanded_function_waits_for_its_siblings_before_returning():
    log = []

    async def f():
        __con_scope__ = __con__.prejoin()
        try:
            __con_scope__.start(child, log, "a", 3)
            __con_scope__.start(child, log, "b", 1)
            log.append("body done")
            return "value"
        except BaseException as __con_exc__:
            if await __con_scope__.failed(__con_exc__):
                raise
        finally:
            await __con_scope__.join()

    async def main():
        result = await f()
        log.append(f"f returned {result}")

    run(main)
    assert log == ["body done", "b done", "a done", "f returned value"]


def test_hand_expanded_body_exception_waits_for_siblings_and_interrupts_them():
    log = []

    async def sleeper():
        try:
            await con.sleep(10)
        except con.Interrupted:
            log.append("sleeper interrupted")
            raise

    async def f():
        __con_scope__ = __con__.prejoin()
        try:
            __con_scope__.start(sleeper)
            await con.idle()
            raise ValueError("body")
        except BaseException as __con_exc__:
            if await __con_scope__.failed(__con_exc__):
                raise
        finally:
            await __con_scope__.join()

    async def main():
        try:
            await f()
        except ValueError as exc:
            log.append(f"caught {exc}")

    run(main)
    assert log == ["sleeper interrupted", "caught body"]


def test_ordinary_functions_and_awaitable_returning_functions_as_siblings():
    log = []

    def plain(x):
        log.append(("plain", x))

    def returns_awaitable(x):
        return child(log, f"awaitable {x}")

    class Awaitable:  # an object with __await__, not a coroutine
        def __await__(self):
            return child(log, "object").__await__()

    @types.coroutine
    def generator_based():  # a generator flagged CO_ITERABLE_COROUTINE
        yield from child(log, "generator").__await__()

    def returns_generator():
        return generator_based()

    def returns_plain_generator():  # a plain generator is a value, not something to run
        return (i for i in ())

    @prejoining
    async def main(scope):
        scope.start(plain, 1)
        scope.start(returns_awaitable, 2)
        scope.start(functools.partial(plain, 3))
        scope.start(Awaitable)
        scope.start(returns_generator)
        scope.start(returns_plain_generator)
        log.append("started")

    run(main)
    assert log == ["started", ("plain", 1), ("plain", 3), "awaitable 2 done", "object done",
                   "generator done"]


def test_arguments_are_passed_and_keywords_too():
    seen = []

    async def worker(a, b, *, c):
        seen.append((a, b, c))

    @prejoining
    async def main(scope):
        scope.start(worker, 1, 2, c=3)

    run(main)
    assert seen == [(1, 2, 3)]


def test_prejoin_in_methods_closures_decorated_functions_and_recursion():
    log = []

    class Server:
        @prejoining
        async def serve(scope, self, n):
            for i in range(n):
                scope.start(child, log, f"method {i}")

    def decorate(fn):
        @functools.wraps(fn)
        async def wrapper(*args):
            log.append("decorated enter")
            await fn(*args)
            log.append("decorated exit")
        return wrapper

    @decorate
    @prejoining
    async def decorated(scope):
        scope.start(child, log, "decorated child")

    def make_closure(tag):
        @prejoining
        async def closure(scope):
            scope.start(child, log, f"closure {tag}")
        return closure

    @prejoining
    async def recurse(scope, depth):
        if depth:
            scope.start(recurse, depth - 1)
            scope.start(child, log, f"depth {depth}", depth)

    async def main():
        await Server().serve(2)
        log.append("serve returned")
        await decorated()
        await make_closure("x")()
        log.append("closure returned")
        await recurse(3)
        log.append("recurse returned")

    run(main)
    assert log[:3] == ["method 0 done", "method 1 done", "serve returned"]
    assert log[3:6] == ["decorated enter", "decorated child done", "decorated exit"]
    assert log[6:8] == ["closure x done", "closure returned"]
    assert sorted(log[8:11]) == ["depth 1 done", "depth 2 done", "depth 3 done"]
    assert log[11] == "recurse returned"


def test_nested_prejoining_invocations():
    log = []

    @prejoining
    async def inner(scope, tag):
        scope.start(child, log, f"{tag}.1", 2)
        scope.start(child, log, f"{tag}.2", 1)

    @prejoining
    async def outer(scope):
        scope.start(inner, "a")
        await inner("b")
        log.append("inner b returned")

    async def main():
        await outer()
        log.append("outer returned")

    run(main)
    assert log.index("inner b returned") > log.index("b.1 done")
    assert log[-1] == "outer returned"
    assert {"a.1 done", "a.2 done", "b.1 done", "b.2 done"} <= set(log)


def test_first_failure_of_a_child_propagates_unwrapped_with_its_traceback():
    log = []

    async def failing():
        await con.idle()
        raise KeyError("first")

    async def sleeper(name):
        try:
            await con.sleep(10)
        finally:
            log.append(f"{name} finally")

    @prejoining
    async def main(scope):
        scope.start(sleeper, "s1")
        scope.start(failing)
        scope.start(sleeper, "s2")
        try:
            await con.sleep(10)
        except con.Interrupted:
            log.append("body interrupted")
            raise

    with pytest.raises(KeyError) as info:
        run(main)
    assert info.value.args == ("first",)
    assert sorted(log) == ["body interrupted", "s1 finally", "s2 finally"]
    frames = [entry.name for entry in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "failing"
    assert not [f for f in traceback.extract_tb(info.value.__traceback__)
                if f.filename.startswith(os.path.dirname(con.__file__) + os.sep)]
    assert getattr(info.value, "later_failures", []) == []
    assert info.value.__context__ is None


def test_later_failures_are_attached_as_notes_and_objects():
    async def first():
        await con.idle()
        raise ValueError("first")

    async def cleanup_fails(name):
        try:
            await con.sleep(10)
        finally:
            raise OSError(f"cleanup of {name}")

    @prejoining
    async def main(scope):
        scope.start(cleanup_fails, "x")
        scope.start(first)
        scope.start(cleanup_fails, "y")

    with pytest.raises(ValueError) as info:
        run(main)
    exc = info.value
    assert [str(e) for e in exc.later_failures] == ["cleanup of x", "cleanup of y"]
    assert len(exc.__notes__) == 2
    assert "cleanup_fails" in exc.__notes__[0] and "OSError: cleanup of x" in exc.__notes__[0]


def test_body_failure_first_keeps_its_own_traceback_and_gets_later_ones():
    async def cleanup_fails():
        try:
            await con.sleep(10)
        finally:
            raise OSError("cleanup")

    @prejoining
    async def main(scope):
        scope.start(cleanup_fails)
        await con.idle()
        raise ValueError("body")

    with pytest.raises(ValueError) as info:
        run(main)
    assert str(info.value) == "body"
    assert [str(e) for e in info.value.later_failures] == ["cleanup"]
    assert traceback.extract_tb(info.value.__traceback__)[-1].name == "main"


def test_body_exception_after_a_child_failed_is_attached_not_raised():
    async def failing():
        raise KeyError("child")

    @prejoining
    async def main(scope):
        scope.start(failing)
        try:
            await con.sleep(10)
        except con.Interrupted:
            raise RuntimeError("body, while unwinding")

    with pytest.raises(KeyError) as info:
        run(main)
    assert [str(e) for e in info.value.later_failures] == ["body, while unwinding"]
    assert info.value.__context__ is None


def test_a_child_that_is_interrupted_is_not_a_failure():
    async def sleeper():
        await con.sleep(10)

    @prejoining
    async def main(scope):
        scope.start(sleeper)
        scope.start(sleeper)
        await con.idle()
        raise ValueError("only this")

    with pytest.raises(ValueError) as info:
        run(main)
    assert not hasattr(info.value, "later_failures")


def test_return_value_of_a_thread_is_discarded_and_it_is_forgotten():
    @prejoining
    async def main(scope):
        async def returns():
            return 42
        scope.start(returns)
        await con.idle()
        await con.idle()
        return scope.live, scope.running()

    assert run(main) == (0, [])


def test_start_after_join_is_refused():
    scopes = []

    @prejoining
    async def f(scope):
        scopes.append(scope)

    async def noop():
        pass

    async def main():
        await f()
        with pytest.raises(RuntimeError, match="already been joined"):
            scopes[0].start(noop)

    run(main)


def test_closing_the_coroutine_does_not_yield():
    # GeneratorExit (a coroutine being closed) must pass through failed/join without waiting.
    log = []

    async def sleeper():
        await con.sleep(10)

    async def f():
        __con_scope__ = __con__.prejoin()
        try:
            __con_scope__.start(sleeper)
            await con.sleep(10)
        except BaseException as __con_exc__:
            log.append(type(__con_exc__).__name__)
            if await __con_scope__.failed(__con_exc__):
                raise
        finally:
            await __con_scope__.join()

    async def main():
        coro = f()
        coro.send(None)  # run f up to its sleep, by hand
        coro.close()
        log.append("closed")

    run(main)
    assert log == ["GeneratorExit", "closed"]


def _shapes(log):
    """The same prejoining body as a method, a closure, a decorated function and a recursion."""
    async def slow_child():
        try:
            await con.sleep(10)
        finally:
            log.append("child finished")

    class Owner:
        @prejoining
        async def method(scope, self):
            scope.start(slow_child)
            await con.idle()
            raise LookupError("method")

    def make_closure():
        secret = "closure"

        @prejoining
        async def closure(scope):
            scope.start(slow_child)
            await con.idle()
            raise LookupError(secret)
        return closure

    def decorate(fn):
        @functools.wraps(fn)
        async def wrapper():
            return await fn()
        return wrapper

    @decorate
    @prejoining
    async def decorated(scope):
        scope.start(slow_child)
        await con.idle()
        raise LookupError("decorated")

    @prejoining
    async def recursive(scope, depth):
        scope.start(slow_child)
        if depth:
            await recursive(depth - 1)
        await con.idle()
        raise LookupError(f"recursive {depth}")

    return {
        "method": lambda: Owner().method(),
        "closure": make_closure(),
        "decorated": decorated,
        "recursion": lambda: recursive(2),
    }


@pytest.mark.parametrize("shape", ["method", "closure", "decorated", "recursion"])
def test_prejoin_before_an_exception_propagates(shape):
    log = []
    call = _shapes(log)[shape]

    async def main():
        try:
            await call()
        except LookupError as exc:
            log.append(f"caller saw {exc}")

    run(main)
    finishes = log.count("child finished")
    assert finishes == (3 if shape == "recursion" else 1)
    assert log[-1].startswith("caller saw") and log[:-1] == ["child finished"] * finishes
