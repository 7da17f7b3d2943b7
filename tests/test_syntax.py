"""The AST step: rejected places, and the prejoin scope around functions that start threads."""
import inspect
import sys
import textwrap

import pytest

from conhook._compiler.pipeline import compile_con
from pipeline_helpers import Park, run

REJECTED = {
    "module-level": ("x = f@(1)\n", 1, 6, "module level"),
    "module-level-method": ("x = obj.meth@(1)\n", 1, 13, "module level"),
    "module-level-non-ascii": ("x = é.f@(1)\n", 1, 8, "module level"),
    "parenthesised-primary": ("x = (a +\n  b )@(1)\n", 2, 6, "module level"),
    "module-level-sibling": ("sibling f@(1)\n", 1, 1, "module level"),
    "class-body": ("class C:\n    x = f@(1)\n", 2, 10, "class body"),
    "generator-function": ("def g():\n    yield f@(1)\n", 2, 12, "generator"),
    "generator-function-later-yield": ("def g():\n    f@(1)\n    yield\n", 2, 6, "generator"),
    "async-generator": ("async def g():\n    f@(1)\n    yield\n", 2, 6, "generator"),
    "generator-expression": ("def g():\n    return list(f@(x) for x in y)\n", 2, 18,
                             "generator expression"),
    "argument-annotation": ("def g():\n    def h(x: f@(1)): pass\n", 2, 15, "annotation"),
    "return-annotation": ("def g():\n    def h() -> f@(1): pass\n", 2, 17, "annotation"),
    "variable-annotation": ("def g():\n    x: f@(1) = 2\n", 2, 9, "annotation"),
    "assignment-target": ("def g():\n    f@(1) = 2\n", 2, 6, "assign"),
    "augmented-target": ("def g():\n    f@(1) += 2\n", 2, 6, "assign"),
    "del-target": ("def g():\n    del f@(1)\n", 2, 10, "delete"),
    "sibling-in-class": ("class C:\n    sibling f@(1)\n", 2, 5, "class body"),
    "sibling-in-lambda": ("def g():\n    return lambda: sibling f@(1)\n", 2, 20, "statement"),
    "sibling-in-call": ("def g():\n    h(\n    sibling f@(1))\n", 3, 5, "statement"),
}
if sys.version_info >= (3, 12):  # type parameter scopes, where CPython allows no 'await'
    REJECTED.update({
        "type-param-bound": ("def g():\n    def h[T: f@(1)](): pass\n", 2, 15, "type parameter's bound"),
        "type-param-bound-module": ("def h[T: f@(1)](): pass\n", 1, 11, "type parameter's bound"),
        "type-alias": ("def g():\n    type T = f@(1)\n", 2, 15, "type alias"),
        "type-alias-module": ("type T = f@(1)\n", 1, 11, "type alias"),
        "generic-class-base": ("def g():\n    class K[T](f@(1)): pass\n", 2, 17, "generic class"),
        "generic-class-metaclass": ("def g():\n    class K[T](metaclass=f@(1)): pass\n", 2, 27,
                                    "generic class"),
    })
if sys.version_info >= (3, 13):
    REJECTED["type-param-default"] = ("def g():\n    def h[T = f@(1)](): pass\n", 2, 16, "type parameter's default")


@pytest.mark.parametrize("source,line,col,words", REJECTED.values(), ids=REJECTED.keys())
def test_rejected_places_name_file_line_column(source, line, col, words):
    """A non-atomic call is reported at its '@' (docs/spec.md §1.1), 'sibling' at the keyword."""
    with pytest.raises(SyntaxError) as info:
        compile_con(source, "mod.py")
    error = info.value
    assert (error.filename, error.lineno, error.offset) == ("mod.py", line, col), error
    assert error.text.rstrip("\n") == source.splitlines()[line - 1]
    assert words in error.msg


@pytest.mark.skipif(sys.version_info < (3, 12), reason="type parameters are new in 3.12")
def test_a_plain_class_base_and_a_generic_functions_defaults_may_make_non_atomic_calls():
    # As CPython allows 'await' there: evaluated in the enclosing function, not the type scope.
    namespace = {}
    exec(compile_con("def g():\n    class K(f@(1)): pass\n    def h[T](x=f@(2)): pass\n", "mod.py"), namespace)
    assert inspect.iscoroutinefunction(namespace["g"])


def test_syntax_error_of_plain_python_points_at_original_columns():
    source = "def g():\n    x = f@(1) + (\n"
    with pytest.raises(SyntaxError) as info:
        compile_con(source, "mod.py")
    assert info.value.lineno == 2
    assert info.value.text.rstrip("\n") == "    x = f@(1) + ("
    assert info.value.offset == len("    x = f@(1) + (")


def test_syntax_error_traceback_holds_no_pipeline_frames():
    with pytest.raises(SyntaxError) as info:
        compile_con("x = f@(1)\n", "mod.py")
    tb = info.value.__traceback__
    files = []
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert files[-1].endswith("conhook/_compiler/pipeline.py")
    assert not any(f.endswith(("conhook/_compiler/ast_step.py", "conhook/_compiler/tokens.py", "/ast.py"))
                   for f in files)


class Recorder:
    """Stands in for the runtime's prejoin scopes and records what the code does."""

    def __init__(self):
        self.events = []

    def prejoin(self):
        self.events.append("prejoin")
        return self

    def start(self, fn, *args, **kwargs):
        self.events.append(("start", fn.__name__, args, kwargs))

    async def failed(self, exc):
        self.events.append(("failed", type(exc).__name__))
        await Park("failed")
        return True

    async def join(self):
        self.events.append("join")
        await Park("join")


def con_with_recorder(source):
    recorder = Recorder()
    ns = {"__con__": recorder, "Park": Park}
    exec(compile_con(textwrap.dedent(source), "<scope>"), ns)
    return ns, recorder


def test_sibling_starts_through_the_scope_with_arguments():
    ns, rec = con_with_recorder("""
        def worker(*a, **k): pass
        def main(x):
            sibling worker@(x, 2, *[3], key=x, **{"k2": 4})
            return "done"
    """)
    assert run(ns["main"](1))[0] == "done"
    assert rec.events == ["prejoin", ("start", "worker", (1, 2, 3), {"key": 1, "k2": 4}), "join"]


def test_sibling_arguments_may_make_nonatomic_calls():
    ns, rec = con_with_recorder("""
        def worker(x): pass
        def main():
            sibling worker@(Park@("arg"))
    """)
    result, tags = run(ns["main"](), send=lambda t, s: "value")
    assert tags == ["arg", "join"]
    assert rec.events[1] == ("start", "worker", ("value",), {})


@pytest.mark.parametrize("exit_kind", ["return", "fallthrough", "raise", "break-return"])
def test_the_scope_encloses_every_exit(exit_kind):
    ns, rec = con_with_recorder("""
        def worker(): pass
        def main(kind):
            sibling worker@()
            for i in range(3):
                if kind == "break-return":
                    break
            if kind == "return":
                return 1
            if kind == "raise":
                raise KeyError("x")
            if kind == "break-return":
                return 2
    """)
    coro = ns["main"](exit_kind)
    if exit_kind == "raise":
        with pytest.raises(KeyError):
            run(coro)
        assert rec.events[-2:] == [("failed", "KeyError"), "join"]
    else:
        run(coro)
        assert rec.events[-1] == "join"
        assert not any(isinstance(e, tuple) and e[0] == "failed" for e in rec.events)


def test_exception_reraised_unchanged_when_it_is_the_first_failure():
    ns, rec = con_with_recorder("""
        def worker(): pass
        def main():
            sibling worker@()
            raise ValueError("mine")
    """)
    with pytest.raises(ValueError, match="mine") as info:
        run(ns["main"]())
    assert info.value.__context__ is None
    assert [f.lineno for f in __import__("traceback").extract_tb(info.value.__traceback__)][-1] == 5


def test_docstring_of_prejoining_function_survives():
    ns, _ = con_with_recorder('''
        def main():
            """Starts things."""
            sibling main@()
    ''')
    assert ns["main"].__doc__ == "Starts things."


def test_functions_without_sibling_have_no_scope():
    ns, rec = con_with_recorder("""
        def main():
            return Park@()
    """)
    run(ns["main"]())
    assert rec.events == []


def test_toplevel_mode_allows_calls_and_siblings_at_module_level():
    recorder = Recorder()
    code = compile_con("x = Park@('top')\nsibling worker@(x)\n", "<cell>", toplevel=True)
    ns = {"__con__": recorder, "Park": Park, "worker": lambda x: None}
    coro = eval(code, ns)
    run(coro, send=lambda t, s: 42)
    assert ns["x"] == 42
    assert recorder.events[:2] == ["prejoin", ("start", "<lambda>", (42,), {})]


@pytest.mark.skipif(sys.version_info < (3, 15), reason="lazy import is new in 3.15")
def test_lazy_import_in_toplevel_input_that_starts_threads_is_rejected_at_it():
    """'sibling' at top level puts the input in a try block, where CPython forbids 'lazy import'."""
    source = "def f(): pass\nif 1:\n    lazy import json\nsibling f@()\n"
    with pytest.raises(SyntaxError, match="'lazy import' cannot stand in input that starts threads") as info:
        compile_con(source, "<cell>", toplevel=True)
    assert (info.value.filename, info.value.lineno, info.value.offset) == ("<cell>", 3, 5)
    compile_con("lazy import json\nx = f@()\n", "<cell>", toplevel=True)  # no threads, no try
    compile_con("import con\nlazy import json\ndef f():\n    sibling g@()\n", "mod.py")


# -- the AST step looks only at what spans edited lines: what it must still find ----------

def _nested(depth, innermost, kinds=("def", "class")):
    """``innermost`` (lines) inside ``depth`` marker-free functions and classes."""
    lines = []
    for level in range(depth):
        kind = kinds[level % len(kinds)]
        head = f"def f{level}():" if kind == "def" else f"class C{level}:"
        lines += ["    " * level + head, "    " * (level + 1) + f"a{level} = [i for i in range({level})]"]
    return "\n".join(lines + ["    " * depth + line for line in innermost]) + "\n"


DEEP_REJECTIONS = {
    "target": (["def g():", "    f@(1).x, f@(2) = 1, 2"], 15, "assign"),
    "annotation": (["def g():", "    x: f@(1) = 2"], 9, "annotation"),
    "generator": (["def g():", "    x = 1", "    f@(1)", "    if x:", "        yield"], 6, "generator"),
    "class-body": (["class K:", "    y = 2; x = f@(1)"], 17, "class body"),
    "genexp": (["def g():", "    return sum(f@(x) for x in y)"], 17, "generator expression"),
}


@pytest.mark.parametrize("innermost,col,words", DEEP_REJECTIONS.values(), ids=DEEP_REJECTIONS.keys())
def test_rejection_inside_deeply_nested_functions_and_classes(innermost, col, words):
    source = _nested(40, innermost)
    line = next(n for n, text in enumerate(source.splitlines(), 1) if "@(" in text)
    with pytest.raises(SyntaxError) as info:
        compile_con(source, "deep.py")
    error = info.value
    assert words in error.msg
    indent = len(source.splitlines()[line - 1]) - len(source.splitlines()[line - 1].lstrip())
    assert (error.filename, error.lineno, error.offset) == ("deep.py", line, indent - 4 + col)


def _plain_functions(count):
    return "".join(f"def plain{n}(x, y={n}):\n    '''No con syntax: yield here is a word.'''\n"
                   f"    return [x @ y for _ in range(y)] + {{'k': x}}['k']\n\n" for n in range(count))


def _con_functions(count):
    return "".join(f"def con{n}(x):\n    'Each makes non-atomic calls.'\n"
                   f"    return [Park@(x) for _ in range({n})] + [Park@(x)]\n\n" for n in range(count))


@pytest.mark.parametrize("before", [_plain_functions, _con_functions], ids=["plain", "con"])
def test_rejection_after_a_hundred_functions(before):
    source = before(100) + "def late():\n    del f@(1)\n"
    with pytest.raises(SyntaxError) as info:
        compile_con(source, "late.py")
    assert (info.value.lineno, info.value.offset) == (source.count("\n"), 10)
    assert "delete" in info.value.msg


def test_marker_after_a_hundred_functions_without_markers():
    source = _plain_functions(100) + "def late(x):\n    return [Park@(v) for v in x]\n"
    ns = {"Park": Park}
    exec(compile_con(source, "late.py"), ns)
    assert run(ns["late"]("ab"), send=lambda tag, step: tag * 2) == (["aa", "bb"], ["a", "b"])
    assert __import__("inspect").iscoroutinefunction(ns["late"])
    assert not __import__("inspect").iscoroutinefunction(ns["plain99"])  # plain stays plain


CARETS = {
    "after-one-call": ("    x = Park@('a'); y = 1 / zero\n", "1 / zero"),
    "after-several": ("    x = Park@(Park@('a')) + Park@('b'); y = 1 / zero\n", "1 / zero"),
    "between-calls": ("    x = Park@('a') + (1 / zero) + Park@('b')\n", "1 / zero"),
    "call-arguments": ("    x = Park@(1 / zero)\n", "1 / zero"),
    "non-ascii": ("    s = 'é€'; x = Park@('a'); y = 1 / zero  # ü\n", "1 / zero"),
    "sibling-line": ("    sibling Park@('a'); y = 1 / zero\n", "1 / zero"),
}


@pytest.mark.parametrize("line,expected", CARETS.values(), ids=CARETS.keys())
def test_carets_on_edited_lines_point_at_the_original_text(line, expected):
    import traceback
    source = _plain_functions(3) + "def g(zero):\n" + line
    code = compile_con(source, "carets.py")
    ns = {"Park": Park, "__con__": Recorder()}
    exec(code, ns)
    with pytest.raises(ZeroDivisionError) as info:
        run(ns["g"](0))
    frame = traceback.extract_tb(info.value.__traceback__)[-1]
    assert frame.lineno == source.count("\n")
    assert line.encode()[frame.colno:frame.end_colno].decode() == expected  # UTF-8 columns


ALLOWED_DESPITE_YIELD = {
    "nested-generator": "def g():\n    def inner():\n        yield 1\n    return Park@(list(inner()))\n",
    "inside-a-generator": "def gen():\n    def inner():\n        return Park@(1)\n    yield inner\n",
    "word-in-string": "def g():\n    x = 'yield'  # yield\n    return Park@(x)\n",
    "lambda-generator": "def g():\n    h = lambda: (yield)\n    return Park@(h)\n",
}


@pytest.mark.parametrize("source", ALLOWED_DESPITE_YIELD.values(), ids=ALLOWED_DESPITE_YIELD.keys())
def test_yield_elsewhere_does_not_make_a_function_a_generator(source):
    compile_con(source, "mod.py")


REJECTED_GENERATORS = {
    "yield-far-below": "def g():\n    Park@(1)\n" + "    x = 1\n" * 50 + "    yield x\n",
    "yield-in-decorator-of-nested": "def g():\n    Park@(1)\n    @(yield)\n    def h(): pass\n",
    "yield-in-default-of-nested": "def g():\n    Park@(1)\n    def h(x=(yield)): pass\n",
    "yield-from": "def g():\n    Park@(1)\n    yield from ()\n",
    "lambda": "def g():\n    return lambda: (Park@(1), (yield))\n",
    "same-line": "def g():\n    yield Park@(1)\n",
}


@pytest.mark.parametrize("source", REJECTED_GENERATORS.values(), ids=REJECTED_GENERATORS.keys())
def test_generators_are_found_wherever_their_yield_stands(source):
    with pytest.raises(SyntaxError, match="generator") as info:
        compile_con(source, "mod.py")
    assert info.value.lineno == next(n for n, t in enumerate(source.splitlines(), 1) if "@(" in t)
