"""Behaviour of compiled non-atomic code, driven by hand with send/throw/close."""
import inspect
import sys
import traceback
import warnings

import pytest

from pipeline_helpers import con, run

PY312 = sys.version_info >= (3, 12)


def test_functions_become_coroutine_functions():
    ns = con("""
        def f(): return park@()
        def g(): return 1
        h = lambda: park@()
    """)
    assert inspect.iscoroutinefunction(ns["f"])
    assert inspect.iscoroutinefunction(ns["h"])
    assert not inspect.iscoroutinefunction(ns["g"])


def test_value_of_the_call_is_the_result():
    ns = con("""
        def double(x):
            return 2 * park@(x)
        def main():
            return double@(3) + double@(4)
    """)
    result, tags = run(ns["main"](), send=lambda tag, step: tag)
    assert result == 14 and tags == [3, 4]


def test_loops_with_break_and_continue():
    ns = con("""
        def main(n):
            out = []
            for i in range(n):
                if i == 1:
                    continue
                while True:
                    v = park@(i)
                    out.append(v)
                    break
                if i == 3:
                    break
            else:
                out.append("no-break")
            return out
    """)
    result, tags = run(ns["main"](10), send=lambda tag, step: tag * 10)
    assert result == [0, 20, 30] and tags == [0, 2, 3]


def test_try_except_else_finally_with_calls_in_every_clause():
    ns = con("""
        def main(fail, log):
            try:
                log.append(park@("try"))
                if fail:
                    raise KeyError(fail)
            except KeyError as e:
                log.append(park@("except"))
            else:
                log.append(park@("else"))
            finally:
                log.append(park@("finally"))
            return log
    """)
    assert run(ns["main"](0, []), send=lambda t, s: t) == (["try", "else", "finally"],
                                                          ["try", "else", "finally"])
    assert run(ns["main"](1, []), send=lambda t, s: t)[0] == ["try", "except", "finally"]


def test_except_star():
    ns = con("""
        def main():
            caught = []
            try:
                park@()
                raise ExceptionGroup("g", [KeyError(1), ValueError(2)])
            except* KeyError as eg:
                caught.append(park@("key"))
            except* ValueError as eg:
                caught.append(park@("value"))
            return caught
    """)
    assert run(ns["main"](), send=lambda t, s: t)[0] == ["key", "value"]


def test_throw_is_caught_by_except_two_frames_down():
    ns = con("""
        def inner(log):
            try:
                return park@("inner")
            except KeyError as e:
                log.append(("caught", e.args))
                return "recovered"
        def middle(log):
            return inner@(log)
        def outer(log):
            r = middle@(log)
            log.append(r)
            return park@("after")
    """)
    log = []
    coro = ns["outer"](log)
    assert coro.send(None) == "inner"
    assert coro.throw(KeyError("boom")) == "after"
    assert log == [("caught", ("boom",)), "recovered"]


def test_uncaught_throw_has_user_frames_in_traceback():
    ns = con("""
        def inner():
            return park@()
        def outer():
            return inner@()
    """, filename="tb_module.py")
    coro = ns["outer"]()
    coro.send(None)
    with pytest.raises(KeyError) as info:
        coro.throw(KeyError("x"))
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert names[-4:-2] == ["outer", "inner"]


def test_close_runs_finally_blocks_of_every_frame():
    ns = con("""
        def inner(log):
            try:
                park@()
            finally:
                log.append("inner")
        def outer(log):
            try:
                inner@(log)
            finally:
                log.append("outer")
    """)
    log = []
    coro = ns["outer"](log)
    coro.send(None)
    coro.close()
    assert log == ["inner", "outer"]


def test_with_blocks():
    ns = con("""
        class CM:
            def __init__(self, log): self.log = log
            def __enter__(self): self.log.append("enter"); return self
            def __exit__(self, *exc): self.log.append(("exit", exc[0])); return True
        async def opened(log):
            await park()
            return CM(log)
        def main(log):
            with opened@(log) as cm:
                park@()
                raise KeyError
            with CM(log):
                log.append(park@("body"))
            return log
    """)
    log = run(ns["main"]([]), send=lambda t, s: t)[0]
    assert log == ["enter", ("exit", KeyError), "enter", "body", ("exit", None)]


def test_closures_and_nonlocal():
    ns = con("""
        def main():
            count = 0
            def bump(by):
                nonlocal count
                count += park@(by)
            bump@(1); bump@(2)
            get = lambda: park@(count)
            return get@()
    """)
    assert run(ns["main"](), send=lambda t, s: t)[0] == 3


def test_methods_super_static_and_class_methods():
    ns = con("""
        class Base:
            def value(self):
                return park@(1)
        class Child(Base):
            def value(self):
                return super().value@() + 10
            @staticmethod
            def static(x):
                return park@(x)
            @classmethod
            def klass(cls, x):
                return (cls.__name__, park@(x))
        def main():
            c = Child()
            return c.value@(), Child.static@(5), c.klass@(6)
    """)
    assert run(ns["main"](), send=lambda t, s: t)[0] == (11, 5, ("Child", 6))


def test_recursion():
    ns = con("""
        def fib(n):
            if n < 2:
                return park@(n)
            return fib@(n - 1) + fib@(n - 2)
    """)
    assert run(ns["fib"](10), send=lambda t, s: t)[0] == 55


def test_decorators_and_default_arguments_contain_calls():
    ns = con("""
        async def make_decorator(tag):
            await park(tag)
            def deco(fn):
                fn.tag = tag
                return fn
            return deco
        def main():
            @make_decorator@("deco")
            def g(x=park@("default")):
                return x
            return g.tag, g()
    """)
    result, tags = run(ns["main"](), send=lambda t, s: t)
    assert result == ("deco", "default") and tags == ["deco", "default"]


def test_comprehensions():
    ns = con("""
        def main(xs):
            lst = [park@(x) for x in xs]
            st = {park@(x) % 2 for x in xs}
            dct = {x: park@(x * 10) for x in xs if park@(x) > 1}
            nested = [[park@(x + y) for y in xs] for x in xs]
            first_iter = [x for x in park@(xs)]
            pairs = [(x, park@(y)) for x in xs for y in park@(xs) if y > 1]
            return lst, st, dct, nested, first_iter, pairs
    """)
    result = run(ns["main"]([1, 2]), send=lambda t, s: t)[0]
    assert result == ([1, 2], {0, 1}, {2: 20}, [[2, 3], [3, 4]], [1, 2], [(1, 2), (2, 2)])


def test_comprehension_mixing_await_and_nonatomic_calls_in_async_def():
    ns = con("""
        async def main(xs):
            a = [await park(x) + park@(x) for x in xs]
            b = [park@(x) async for x in agen(xs)]
            return a, b
        async def agen(xs):
            for x in xs:
                yield x
    """)
    assert run(ns["main"]([1, 2]), send=lambda t, s: t)[0] == ([2, 4], [1, 2])


def test_comprehension_with_lambda_is_not_awaited():
    ns = con("""
        def main():
            fs = [lambda: park@(i) for i in range(2)]
            return [f@() for f in fs]
    """)
    assert run(ns["main"](), send=lambda t, s: t)[0] == [1, 1]


def test_lambda():
    ns = con("""
        def main():
            f = lambda x: park@(x) + 1
            return f@(1)
    """)
    assert run(ns["main"](), send=lambda t, s: t)[0] == 2


def test_more_than_256_call_sites():
    body = "\n".join(f"    total += park@({i})" for i in range(300))
    ns = con(f"def main():\n    total = 0\n{body}\n    return total\n")
    result, tags = run(ns["main"](), send=lambda t, s: t)
    assert result == sum(range(300)) and len(tags) == 300


def test_method_position_marker():
    ns = con("""
        async def get_adder(x):
            await park()
            return lambda y: x + y
        class Box:
            async def adder(self, x):
                return lambda y: x * y
        def main():
            box = Box()
            return get_adder@(2)(3), box.adder@(4)(5), get_adder@(1)(1) + 1
    """)
    assert run(ns["main"]())[0] == (5, 20, 3)


def test_async_def_awaits_con_functions_and_back():
    ns = con("""
        def con_fn(x):
            return park@(x) + 1
        async def async_fn(x):
            return await con_fn(x) * 10
        def main():
            return async_fn@(1)
    """)
    assert run(ns["main"](), send=lambda t, s: t)[0] == 20


def test_async_def_with_markers_stays_a_coroutine():
    ns = con("""
        async def both(x):
            a = await park(x)
            b = park@(x + 1)
            return a + b
    """)
    assert run(ns["both"](1), send=lambda t, s: t)[0] == 3


def test_stop_iteration_becomes_runtime_error():
    ns = con("""
        def main():
            park@()
            raise StopIteration
    """)
    coro = ns["main"]()
    coro.send(None)
    with pytest.raises(RuntimeError, match="StopIteration"):
        coro.send(None)


def test_not_awaitable_is_a_type_error_at_that_line():
    ns = con("""
        def plain():
            return 3
        def main():
            x = 1
            return plain@()
    """, filename="typeerr.py")
    with pytest.raises(TypeError) as info:
        run(ns["main"]())
    assert traceback.extract_tb(info.value.__traceback__)[-1].lineno == 6


def test_unstarted_call_warns_never_awaited():
    ns = con("""
        def f():
            park@()
    """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ns["f"]()
        import gc
        gc.collect()
    assert any("was never awaited" in str(w.message) for w in caught)


def test_traceback_columns_point_at_original_text():
    ns = con("""
        def main():
            s = "héllo"; x = boom@(1) + 2
        async def boom(x):
            raise ValueError
    """, filename="carets.py")
    with pytest.raises(ValueError) as info:
        run(ns["main"]())
    frame = traceback.extract_tb(info.value.__traceback__)[-2]
    line = '    s = "héllo"; x = boom@(1) + 2'
    assert frame.lineno == 3
    start, end = line.index("boom"), line.index(" + 2")  # co_positions count UTF-8 bytes
    assert (frame.colno, frame.end_colno) == (len(line[:start].encode()), len(line[:end].encode()))


@pytest.mark.skipif(not PY312, reason="f-strings are opaque to the 3.11 tokenizer")
def test_fstring_replacement_fields():
    ns = con("""
        def main():
            return f"<{park@(1)}|{park@(2)!r}>"
    """)
    assert run(ns["main"](), send=lambda t, s: t)[0] == "<1|2>"


@pytest.mark.skipif(sys.version_info < (3, 14), reason="template strings are new in 3.14")
def test_template_string_fields_keep_the_expression_as_written():
    ns = con("""
        def main():
            return t"<{ park@(1) !r:>{park@(2)}}|{(park@(
                3))}é{park@(4)}>"
    """)
    template = run(ns["main"](), send=lambda t, s: t)[0]
    assert [(i.value, i.expression, i.conversion, i.format_spec) for i in template.interpolations] == [
        (1, " park@(1) ", "r", ">2"), (3, "(park@(\n        3))", None, ""), (4, "park@(4)", None, "")]


@pytest.mark.skipif(sys.version_info < (3, 14), reason="annotations are deferred from 3.14 on")
def test_annotations_stay_plain_functions_beside_a_nonatomic_body():
    """3.14+ defers annotations into ``__annotate__``: it is never a coroutine, and a name
    it refers to need only exist when the annotations are asked for."""
    ns = con("""
        def f(x: Later) -> list[Later]:
            return [park@(x)]
        class Later:
            pass
    """)
    assert inspect.iscoroutinefunction(ns["f"])
    later = ns["Later"]
    assert ns["f"].__annotations__ == {"x": later, "return": list[later]}
    annotate = getattr(ns["f"], "__annotate__", None)
    assert annotate is None or not inspect.iscoroutinefunction(annotate)
    assert run(ns["f"](5), send=lambda t, s: t)[0] == [5]


@pytest.mark.skipif(sys.version_info < (3, 15), reason="unpacking in comprehensions is new in 3.15")
def test_unpacking_in_comprehensions():
    ns = con("""
        def main():
            return [*park@([x, x]) for x in (1, 2)], {**park@({x: x}) for x in (1, 2)}
    """)
    assert run(ns["main"](), send=lambda t, s: t)[0] == ([1, 1, 2, 2], {1: 1, 2: 2})


def test_ordinary_code_in_an_opted_in_module_is_untouched():
    ns = con("""
        def plain(a, b):
            return [x @ y for x, y in zip(a, b)]
        class M:
            def __matmul__(self, other): return "mm"
    """)
    assert not inspect.iscoroutinefunction(ns["plain"])
    assert ns["plain"]([ns["M"]()], [1]) == ["mm"]
