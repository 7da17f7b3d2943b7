"""Context variables per thread (docs/spec.md §1.2, §1.6, §3): every thread runs in its own
copy of its creator's context, the root in a copy of bootstrap's caller's, and ``to_thread@``'s
function in a copy of the caller's."""
from __future__ import annotations

import contextvars
import decimal

import pytest

from .helpers import con, prejoining, run

var = contextvars.ContextVar("var", default="unset")


def test_a_thread_sees_its_creators_values_as_they_were_when_it_started():
    seen = {}

    async def child(name):
        seen[name, "start"] = var.get()
        var.set(name)
        await con.idle()
        seen[name, "end"] = var.get()

    @prejoining
    async def main(scope):
        var.set("main")
        scope.start(child, "a")
        var.set("main, later")  # after the start: the child does not see it
        scope.start(child, "b")
        await con.idle()
        seen["main"] = var.get()
    run(main)
    assert seen == {("a", "start"): "main", ("a", "end"): "a",
                    ("b", "start"): "main, later", ("b", "end"): "b", "main": "main, later"}


def test_nothing_the_program_sets_leaks_out_of_bootstrap():
    token = var.set("caller")
    try:
        async def child():
            return var.get()

        @prejoining
        async def main(scope):
            assert var.get() == "caller"
            var.set("root")
            scope.start(child)
        run(main)
        assert var.get() == "caller"
        run(lambda: var.set("an ordinary root function"))
        assert var.get() == "caller"
    finally:
        var.reset(token)


def test_decimal_localcontext_is_per_thread():
    results = {}

    async def compute(precision):
        with decimal.localcontext() as ctx:
            ctx.prec = precision
            await con.idle()  # the other thread sets its own precision meanwhile
            await con.idle()
            results[precision] = str(decimal.Decimal(1) / decimal.Decimal(7))

    @prejoining
    async def main(scope):
        scope.start(compute, 5)
        scope.start(compute, 12)
    run(main)
    assert results == {5: "0.14286", 12: "0.142857142857"}


def test_an_interrupted_thread_unwinds_in_its_own_context():
    seen = []

    async def waiter():
        var.set("waiter")
        try:
            await con.Event().wait()
        finally:
            seen.append(var.get())

    async def failing():
        var.set("failing")
        await con.idle()
        raise KeyError("boom")

    @prejoining
    async def main(scope):
        var.set("main")
        scope.start(waiter)
        scope.start(failing)
    with pytest.raises(KeyError):
        run(main)
    assert seen == ["waiter"]


def test_to_thread_runs_the_function_in_a_copy_of_the_callers_context():
    def in_worker():
        seen = var.get()
        var.set("worker")
        return seen

    async def main():
        var.set("caller")
        seen = await con.to_thread(in_worker)
        return seen, var.get()
    assert run(main) == ("caller", "caller")
