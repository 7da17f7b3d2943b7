"""The toolchain's views of con files: the typing view's text and columns, and the format
view's width and its refusal of a formatter's output that no con text says."""
from __future__ import annotations

import ast
import inspect

import pytest

from conhook._compiler import pipeline
from conhook._toolchain import view

from .helpers import con_programs



def _code_objects(code):
    yield code
    for const in code.co_consts:
        if inspect.iscode(const):
            yield from _code_objects(const)


def test_typing_view():
    source = "def f(a):\n    sibling g@(a)\n    return a.m@(1).n@(2)[0]\n"
    made = view.typing_view(source)
    assert made.text.splitlines()[:3] == [
        "async def f(a):", f"    {view.SIBLING_HELPER}( g(a))", "    return (await (await a.m(1)).n(2))[0]"]
    assert made.lines == 3 and made.original_col(3, made.text.splitlines()[2].index("n(2)")) == \
        source.splitlines()[2].index("n@(2)")


def test_a_formatter_that_splits_con_syntax_apart_is_refused():
    """A formatter that wrapped a sibling's call in brackets would make it ordinary code: the
    result is refused, not written."""
    _, marker = view.format_view("import con\n")
    split = f"def f():\n    {marker * 5} = (\n        g{marker}(1)\n    )\n"
    with pytest.raises(view.ViewError, match="moved con syntax apart"):
        view.from_format_view(split, marker)


def test_format_view_keeps_line_widths():
    source = "def f():\n    sibling g@(1)\n    return h@(2) + k()@(3)\n"
    text, _ = view.format_view(source)
    widths = [len(line) for line in text.splitlines()]
    assert widths[:2] == [len(line) for line in source.splitlines()][:2]
    assert widths[2] == len(source.splitlines()[2]) + 1  # only ')@(' takes one more


def test_typing_view_of_every_con_program_compiles():
    """Each view is Python that CPython compiles: every 'await' stands in an 'async def' (or at
    the top level of a %%con example), and no function became async that did not have to."""
    for name, source in con_programs().items():
        made = view.typing_view(source, name)
        con_code = {c.co_qualname: c.co_flags for c in _code_objects(
            pipeline.compile_con(source, name, toplevel=True))}
        code = compile(made.text, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        assert made.text.count("\n") >= source.count("\n")
        assert made.text.splitlines()[:made.lines] != source.splitlines() or "@(" not in source
        for const in _code_objects(code):
            con = con_code.get(const.co_qualname)
            if con is not None and not const.co_name.startswith("<"):  # functions (not lambdas, comprehensions)
                assert bool(const.co_flags & inspect.CO_COROUTINE) == bool(con & inspect.CO_COROUTINE), \
                    (name, const.co_qualname)


def test_which_functions_become_coroutine_functions():
    source = ("def outer(x=g@(1)):\n"
              "    def inner():\n"
              "        return h@()\n"
              "    f = lambda: 1\n"
              "    class C:\n"
              "        def m(self): return k@()\n"
              "    return inner, f, C\n")
    lines = view.typing_view(source).text.splitlines()
    assert [line.split("(")[0].strip() for line in lines if " def " in f" {line}"] == \
        ["def outer", "async def inner", "async def m"]  # outer's default is outer's caller's
