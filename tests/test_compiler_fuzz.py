"""Bad input to the compiler (issue 6, item 3): a property-based fuzz of the pipeline.

Three properties, each bounded for CI (set ``CONHOOK_FUZZ_EXAMPLES=N`` to run N
examples per property instead, e.g. 2000 for a long local run):

1. valid Python without con syntax (hypothesmith) compiles to code objects identical
   to plain ``compile`` - every attribute, every position, recursively;
2. con programs (a generator of our own that knows where docs/spec.md §1.1/§1.2 allow con syntax,
   and random ``@(``/``sibling`` mutations of hypothesmith programs) either compile into
   code where every non-atomic call became exactly one await, or raise a SyntaxError
   that points into the original text at the offending call;
3. compiled programs, run by a tiny driver (send/throw/close) in a subprocess, never
   crash the interpreter.

Every failure these found is pinned down as an explicit regression case below.
"""
from __future__ import annotations

import contextlib
import dis
import io
import json
import keyword
import os
import re
import subprocess
import sys
import textwrap
import tokenize
import types
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import hypothesmith
import pytest
from hypothesis import HealthCheck, assume, given, note, settings, strategies as st

from conhook._compiler.pipeline import compile_con

PY311 = sys.version_info < (3, 12)
CO_COROUTINE = 0x0080
FILENAME = "fuzzed.py"


def fuzz_settings(ci_examples: int):
    """Bounded, reproducible settings; ``CONHOOK_FUZZ_EXAMPLES`` overrides the size."""
    examples = int(os.environ.get("CONHOOK_FUZZ_EXAMPLES", ci_examples))
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------------
# Comparing code objects
# ---------------------------------------------------------------------------------------

CODE_ATTRS = ("co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals",
              "co_stacksize", "co_flags", "co_code", "co_names", "co_varnames", "co_cellvars",
              "co_freevars", "co_filename", "co_name", "co_qualname", "co_firstlineno",
              "co_linetable", "co_exceptiontable")


def const_key(value):
    """A key equal for two constants exactly when the compiler would treat them as one."""
    if isinstance(value, tuple):
        return ("tuple", tuple(const_key(v) for v in value))
    if isinstance(value, frozenset):
        return ("frozenset", tuple(sorted(repr(const_key(v)) for v in value)))
    return (type(value).__name__, repr(value))  # repr tells -0.0 from 0.0, and nan == nan


def assert_same_code(expected: types.CodeType, actual: types.CodeType, path: str = "") -> None:
    path = f"{path}/{expected.co_qualname}"
    for attr in CODE_ATTRS:
        assert getattr(actual, attr) == getattr(expected, attr), f"{path}: {attr} differs"
    assert list(actual.co_positions()) == list(expected.co_positions()), f"{path}: co_positions differ"
    assert len(actual.co_consts) == len(expected.co_consts), f"{path}: co_consts differ"
    for a, b in zip(expected.co_consts, actual.co_consts):
        if isinstance(a, types.CodeType):
            assert isinstance(b, types.CodeType), f"{path}: co_consts differ"
            assert_same_code(a, b, path)
        else:
            assert const_key(a) == const_key(b), f"{path}: constant {a!r} became {b!r}"


def all_code(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from all_code(const)


def compile_plain(source: str):
    """Plain CPython's code for ``source``, or None if CPython rejects it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return compile(source, FILENAME, "exec", dont_inherit=True)
        except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError):
            return None


def compile_quietly(source: str, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile_con(source, FILENAME, **kwargs)


# ---------------------------------------------------------------------------------------
# 1. Valid Python without con syntax is compiled exactly as plain CPython compiles it
# ---------------------------------------------------------------------------------------

# Built once: hypothesmith compiles a parser for the grammar each time it is called.
GRAMMAR_PROGRAMS = hypothesmith.from_grammar()
NODE_PROGRAMS = hypothesmith.from_node()
# from_node() programs hold more calls but cost ~100x more to draw: full-size runs only.
MUTATION_BASES = (st.one_of(GRAMMAR_PROGRAMS, NODE_PROGRAMS) if "CONHOOK_FUZZ_EXAMPLES" in os.environ
                  else GRAMMAR_PROGRAMS)

# Con syntax, conservatively (also inside strings): a tight '@(' after anything that might
# end a primary, 'sibling' followed by what might start one, the reserved prefix.
_MAYBE_CON = re.compile(r"[^\s@]@\(|\bsibling[ \t\f]+[\w'\"]|__con_", re.UNICODE)


def without_con_syntax(source: str) -> bool:
    return not _MAYBE_CON.search(source)


def assert_compiles_like_cpython(source: str) -> None:
    expected = compile_plain(source)
    assume(expected is not None)
    note(f"source: {source!r}")
    assert_same_code(expected, compile_quietly(source))
    assert_same_code(expected, compile_quietly(source, toplevel=True))


# hypothesmith compiles its candidates, and generated calls of literals draw SyntaxWarnings.
@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@fuzz_settings(60)
@given(GRAMMAR_PROGRAMS.filter(without_con_syntax))
def test_generated_grammar_programs_compile_like_cpython(source):
    assert_compiles_like_cpython(source)


@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@fuzz_settings(25)
@given(NODE_PROGRAMS.filter(without_con_syntax))
def test_generated_node_programs_compile_like_cpython(source):
    assert_compiles_like_cpython(source)


# Text that looks like con syntax but is not (docs/spec.md §1.1, §1.2): appended to generated
# programs, it sends them through every stage of the pipeline without changing a thing.
NOT_CON_SYNTAX = [
    "x = a @ (b)\n", "x = a @(b)\n", "x = a@ (b)\n", "x @= (b)\n", "x = a@b\n",
    "@(d)\ndef g(): pass\n", "@d\ndef g(): pass\n",
    "# f@(x) and sibling g@(y)\n", "s = 'f@(x)'\n", 's = "sibling g@(y)"\n', "s = '''\nf@(x)\n'''\n",
    "sibling = 1\n", "sibling(x)\n", "sibling.x = 2\n", "f(sibling)\n", "x = sibling\n",
    "sibling[0] = 1\n", "print(sibling, 1)\n", "x = [sibling for sibling in y]\n",
    "x = None @(y)\n", "x = True@ (y)\n", "def h():\n    return a @ (b)\n",
    "x = f'{a @ (b)}'\n", "x = b'f@(x)'\n", "x = '__con_await__'\n", "# __con_await__\n",
]


@fuzz_settings(40)
@given(GRAMMAR_PROGRAMS.filter(without_con_syntax),
       st.lists(st.sampled_from(NOT_CON_SYNTAX), min_size=1, max_size=3))
def test_look_alikes_of_con_syntax_compile_like_cpython(program, extras):
    # Appended after the program: a program ending in a continuation line or an open
    # bracket would swallow it, which only makes CPython and us reject it alike.
    assert_compiles_like_cpython(program.rstrip("\\ \t\f") + "\n" + "".join(extras))


# ---------------------------------------------------------------------------------------
# 2. Con programs: compiled correctly, or rejected at the right place
# ---------------------------------------------------------------------------------------
#
# Programs are written with sentinels, so that one text gives both the con source and a
# reference source for plain CPython, and the position of every site is known:
#
#   \x05ID\x01   the start of a non-atomic call's primary (position only)
#   \x00ID\x01   the '@' of a non-atomic call: '@' in the con source, '' in the reference
#   \x03         the end of a non-atomic call: '' / '.zz_mark ' (the reference marks it)
#   \x02ID\x01   a sibling statement: 'sibling ' / 'zz_sib = '
#   \x06ID\x01   any other position worth knowing (position only)

_SENTINEL = re.compile(r"([\x00\x02\x05\x06])(\d+)\x01|\x03")


def resolve(text: str):
    """(con source, reference source, {id: (lineno, 0-based column)}) of sentinel text."""
    con_parts, ref_parts = [], []
    positions = {}
    line, col = 1, 0
    pos = 0

    def emit(con, ref):
        nonlocal line, col
        con_parts.append(con)
        ref_parts.append(ref)
        newlines = con.count("\n")
        if newlines:
            line += newlines
            col = len(con) - con.rindex("\n") - 1
        else:
            col += len(con)

    for match in _SENTINEL.finditer(text):
        emit(text[pos:match.start()], text[pos:match.start()])
        pos = match.end()
        kind, ident = match.group(1), match.group(2)
        if kind is None:
            emit("", ".zz_mark ")
            continue
        positions[int(ident)] = (line, col)
        if kind == "\x00":
            emit("@", "")
        elif kind == "\x02":
            emit("sibling ", "zz_sib = ")
    emit(text[pos:], text[pos:])
    return "".join(con_parts), "".join(ref_parts), positions


@dataclass(frozen=True)
class Site:
    """Con syntax in a generated program; ``accept``: ids of the places an error may name."""
    ok: bool
    accept: tuple[int, ...]


def is_con_error(error: SyntaxError) -> bool:
    return any(word in error.msg for word in ("non-atomic", "'sibling'", "conhook", "__con_"))


def check_syntax_error(error: SyntaxError, source: str) -> None:
    """Whatever the cause, a SyntaxError names the file, an existing line and a column in it."""
    lines = re.split(r"\r\n|\r|\n", source)  # CPython's line ends, not str.splitlines()'s
    assert type(error) in (SyntaxError, IndentationError, TabError), repr(error)
    assert error.filename == FILENAME, error
    assert error.lineno is not None and 1 <= error.lineno <= len(lines) + 1, error
    line = lines[error.lineno - 1] if error.lineno <= len(lines) else ""
    assert error.offset is not None and 0 <= error.offset <= len(line) + 1, (error, line)
    if error.text is not None and error.lineno <= len(lines):
        assert error.text.rstrip("\r\n") == line.rstrip("\r\n"), (error.text, line)
    if error.end_lineno == error.lineno and error.end_offset not in (None, 0):
        assert error.offset <= error.end_offset <= len(line) + 2, (error, line)


def error_place(error: SyntaxError):
    return (error.lineno, error.offset - 1)


# -- counting awaits -----------------------------------------------------------------------

MATMUL_OPS = {i for i, (name, _) in enumerate(dis._nb_ops) if name in ("NB_MATRIX_MULTIPLY",
                                                                      "NB_INPLACE_MATRIX_MULTIPLY")}
COMPREHENSIONS = ("<listcomp>", "<setcomp>", "<dictcomp>")


def census(code: types.CodeType) -> dict:
    counts = {"awaits": 0, "prejoin": 0, "marks": 0, "sibs": 0, "matmul": 0, "loaded": Counter()}
    instrs = list(dis.get_instructions(code))
    for i, ins in enumerate(instrs):
        if ins.opname == "GET_AWAITABLE":
            counts["awaits"] += 1
            counts["prejoin"] += awaits_prejoin_scope(instrs, i)
        elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and ins.argval == "zz_mark":
            counts["marks"] += 1
        elif ins.opname.startswith("STORE_") and ins.argval == "zz_sib":
            counts["sibs"] += 1
        elif ins.opname == "BINARY_OP" and ins.arg in MATMUL_OPS:
            counts["matmul"] += 1
        elif ins.opname == "LOAD_CONST" and isinstance(ins.argval, types.CodeType):
            counts["loaded"][id(ins.argval)] += 1  # 3.11 compiles a 'while' test twice
    return counts


def awaits_prejoin_scope(instrs, i) -> bool:
    """Whether the await at ``i`` is one of the prejoin scope's: ``__con_scope__.join()``/``.failed(e)``.

    CPython copies a ``finally`` block once per way out, so there is one ``failed`` and
    one ``join`` or more.
    """
    j = i - 1
    while j > 0 and (instrs[j].opname in ("CALL", "PRECALL", "CACHE", "KW_NAMES")
                     or instrs[j].argval == "__con_exc__"):
        j -= 1
    return (instrs[j].opname in ("LOAD_ATTR", "LOAD_METHOD") and instrs[j].argval in ("join", "failed")
            and instrs[j - 1].argval == "__con_scope__")


def live_code(code: types.CodeType):
    """Like ``all_code``, but only code objects that are loaded: on 3.11 CPython keeps the
    constants of code it removed as dead, and the bytecode rewrite drops them."""
    yield code
    loaded = census(code)["loaded"]
    for const in code.co_consts:
        if isinstance(const, types.CodeType) and id(const) in loaded:
            yield from live_code(const)


def holds_marks(code: types.CodeType) -> bool:
    """Whether a 3.11 comprehension function makes non-atomic calls (itself or nested ones)."""
    if census(code)["marks"]:
        return True
    return any(holds_marks(c) for c in code.co_consts
               if isinstance(c, types.CodeType) and c.co_name in COMPREHENSIONS)


def assert_awaits_where_calls_were(con_code: types.CodeType, ref_code: types.CodeType) -> None:
    """Each non-atomic call became exactly one await, in the right code object, and nothing else changed.

    ``ref_code`` is plain CPython's code for the program with every ``f@(x)`` written
    ``f(x).zz_mark`` and every ``sibling f@(x)`` written ``zz_sib = f(x)``.
    """
    con_all, ref_all = list(live_code(con_code)), list(live_code(ref_code))
    assert [c.co_qualname for c in con_all] == [c.co_qualname for c in ref_all]
    for con, ref in zip(con_all, ref_all):
        where = con.co_qualname
        assert "__con_await__" not in con.co_names and "__con_sibling__" not in con.co_names, \
            f"{where}: a marker survived: {con.co_names}"
        c, r = census(con), census(ref)
        extra = r["marks"]
        if PY311:  # a comprehension that makes non-atomic calls is awaited where it is called
            extra += sum(r["loaded"][id(k)] for k in ref.co_consts
                         if isinstance(k, types.CodeType) and k.co_name in COMPREHENSIONS
                         and not k.co_flags & CO_COROUTINE and holds_marks(k))
        prejoin = "__con_scope__" in con.co_varnames + con.co_cellvars + con.co_names
        if r["sibs"]:
            assert prejoin, f"{where}: starts threads but has no prejoin scope"
        if prejoin:
            assert c["prejoin"] >= 2, f"{where}: prejoin scope without its awaits"
        extra += c["prejoin"]
        assert c["awaits"] == r["awaits"] + extra, f"{where}: {c['awaits']} awaits, expected {r['awaits']} + {extra}"
        assert c["matmul"] == r["matmul"], f"{where}: {c['matmul']} matrix multiplications, expected {r['matmul']}"
        # A call after 'return' is compiled away, yet makes its function non-atomic (docs/spec.md §1.1).
        if extra or "zz_mark" in ref.co_names:
            assert con.co_flags & CO_COROUTINE, f"{where}: awaits but is not a coroutine"
            assert not con.co_flags & 0x0220, f"{where}: a generator that awaits"
        else:
            assert con.co_flags == ref.co_flags, f"{where}: flags changed"


# -- a generator of con programs ------------------------------------------------------------

@dataclass(frozen=True)
class Ctx:
    scope: str = "module"  # module | class | function | lambda | genexp
    generator: bool = False
    is_async: bool = False
    annotation: bool = False
    target: bool = False
    fstring: bool = False
    fdebug: int | None = None  # id of the '=' of the f-string debug field we are in
    oneline: bool = False
    in_comp: bool = False
    indent: str = ""


NAMES = ["a", "b", "f", "g", "obj", "x", "y", "é", "名前", "match", "case", "type", "_", "sibling",
         "e\u0301", "x\u00b7", "a\u203f", "x\u0660"]  # identifiers that end in no regex '\w'

NUMBERS = ["1", "1.", "1.5", "1e3", "0x1f", "2j", "1_0"]
STRINGS = ["'s'", "'é€'", "'a@(b)'", "'{'", "'}'", "'sibling f@(x)'", "b'x'"]
FSTRING_TEXT = ["", "a", "é", "{{", "}}", "a@(b)", " sibling f@(x) ", "x.__con_await__"]


def attr_base(primary: str) -> str:
    """``1.m`` is no attribute access: parenthesize number literals."""
    return f"({primary})" if primary in NUMBERS else primary


class ProgramGen:
    """Draws a con program while keeping, for every site, whether docs/spec.md §1.1/§1.2 allow it there."""

    def __init__(self, draw):
        self.draw = draw
        self.ids = 0
        self.sites: list[Site] = []

    def new_id(self) -> int:
        self.ids += 1
        return self.ids

    def pick(self, options):
        return self.draw(st.sampled_from(options))

    def coin(self) -> bool:
        return self.draw(st.booleans())

    def upto(self, n: int) -> int:
        return self.draw(st.integers(0, n))

    # -- verdicts --

    @staticmethod
    def call_allowed(ctx: Ctx) -> bool:
        return not (ctx.annotation or ctx.target or ctx.scope in ("module", "class", "genexp")
                    or ctx.generator or (ctx.fstring and PY311) or ctx.fdebug is not None)

    # -- expressions --

    def name(self) -> str:
        return self.pick(NAMES)

    def string(self, ctx: Ctx) -> str:
        return self.pick(STRINGS)  # single quotes: they also fit in our f"..." fields

    def atom(self, ctx: Ctx) -> str:
        kind = self.upto(4)
        if kind == 0:
            return self.pick(NUMBERS)
        if kind == 1:
            return self.string(ctx)
        if kind == 2:
            return self.pick(["None", "True", "..."])
        return self.name()

    def primary(self, ctx: Ctx, depth: int) -> str:
        ctx = replace(ctx, oneline=True)
        kind = self.upto(7) if depth > 0 else self.pick([0, 0, 5, 6])
        if kind in (0, 1):
            return self.name()
        if kind == 2:
            return f"{attr_base(self.primary(ctx, depth - 1))}.{self.pick(['m', 'real', 'é'])}"
        if kind == 3:
            return f"{self.primary(ctx, depth - 1)}[{self.expr(ctx, depth - 1)}]"
        if kind == 4:
            return f"({self.expr(ctx, depth - 1)})"
        if kind == 5:
            return self.pick(NUMBERS)
        if kind == 6:
            return self.string(ctx)
        return self.call(ctx, depth - 1)

    def arguments(self, ctx: Ctx, depth: int) -> str:
        count = self.upto(3)
        if count == 1 and depth > 0 and self.upto(5) == 0:  # f@(x for x in y)
            return self.comprehension(ctx, depth - 1, "(", ")")[1:-1]
        args = []
        for i in range(count):
            form = self.upto(3)
            if form == 0:
                args.append(self.expr(ctx, depth - 1))
            elif form == 1:
                args.append(f"k{i}={self.expr(ctx, depth - 1)}")
            else:
                args.append(f"{'*' * (form - 1)}{self.primary(ctx, 0)}")
        args.sort(key=lambda a: a.startswith(("k", "**")))  # positional first
        if ctx.oneline or self.upto(3):
            text = ", ".join(args) + ("," if args and self.upto(4) == 0 else "")
            return text
        inner = ctx.indent + "        "
        return "\n" + ",\n".join(inner + a for a in args) + ("\n" + ctx.indent if self.coin() else "")

    def call(self, ctx: Ctx, depth: int) -> str:
        """f(args) or the non-atomic f@(args)."""
        if self.upto(2) == 0:
            return f"{self.primary(ctx, depth)}({self.arguments(ctx, depth)})"
        return self.con_call(ctx, depth)

    def con_call(self, ctx: Ctx, depth: int, primary: str | None = None) -> str:
        start, at = self.new_id(), self.new_id()
        self.sites.append(Site(self.call_allowed(ctx), (start, at) + ((ctx.fdebug,) if ctx.fdebug else ())))
        ctx = replace(ctx, target=False)
        if primary is None:
            primary = self.primary(ctx, depth)
        return f"\x05{start}\x01{primary}\x00{at}\x01({self.arguments(ctx, depth)})\x03"

    def target_call(self, ctx: Ctx, depth: int) -> str:
        return self.con_call(replace(ctx, target=True), depth)

    def expr(self, ctx: Ctx, depth: int) -> str:
        if depth <= 0:
            return self.atom(ctx)
        kind = self.upto(17)
        sub = depth - 1
        if kind <= 2:
            return self.call(ctx, sub)
        if kind == 3:
            return self.primary(ctx, sub)
        if kind == 4:  # matrix multiplication, in all its spellings
            spacing = self.pick([" @ ", "@", " @", "@ "])
            left, right = self.primary(ctx, sub), self.primary(ctx, sub)
            if spacing == "@" and right.startswith("("):  # that would be a non-atomic call
                spacing = " @"
            return f"{left}{spacing}{right}"
        if kind == 5:
            return f"-{self.call(ctx, sub)} ** 2"
        if kind == 6:
            operator = self.pick(['+', 'and', 'or', '==', 'is not', 'in', '<'])
            return f"({self.expr(ctx, sub)}) {operator} ({self.expr(ctx, sub)})"
        if kind == 7:
            return f"not {self.expr(ctx, sub)}"
        if kind == 8:
            return f"{self.primary(ctx, sub)} if ({self.expr(ctx, sub)}) else {self.expr(ctx, sub)}"
        if kind == 9:
            return self.lambda_(ctx, sub)
        if kind == 10:
            return self.comprehension(ctx, sub)
        if kind == 11 and not ctx.fstring:
            return self.fstring(ctx, sub)
        if kind == 12 and not (ctx.in_comp or ctx.annotation):
            return f"({self.pick(['w', 'v'])} := {self.expr(ctx, sub)})"
        if kind == 13 and ctx.scope == "function" and ctx.is_async and not ctx.annotation:
            return f"await {self.primary(ctx, sub)}"
        if kind == 14:
            return f"[{self.expr(ctx, sub)}, *{self.primary(ctx, sub)}]"
        if kind == 15:  # a keyword right before '@(': never a non-atomic call
            return f"{self.pick(['None', 'True', 'False'])}@({self.expr(ctx, sub)})"
        return self.primary(ctx, sub)

    def lambda_(self, ctx: Ctx, depth: int) -> str:
        default = f"=({self.expr(ctx, depth)})" if self.coin() else ""
        inner = replace(ctx, scope="lambda", generator=False, is_async=False, in_comp=False, target=False)
        return f"(lambda p{default}: {self.expr(inner, depth)})"

    def comprehension(self, ctx: Ctx, depth: int, open_=None, close=None) -> str:
        if open_ is None:
            open_, close = self.pick([("[", "]"), ("{", "}"), ("(", ")"), ("{", "}dict")])
        is_dict = close == "}dict"
        close = close[:1]
        kind = "genexp" if open_ == "(" else ctx.scope
        outer = replace(ctx, in_comp=True)
        inner = replace(ctx, scope=kind, in_comp=True, is_async=ctx.is_async and kind != "genexp")
        first_iter = self.expr(outer, depth)
        target = self.target_call(inner, depth) if self.upto(6) == 0 else self.pick(["i", "j", "(i, j)"])
        elt = self.expr(inner, depth)
        if is_dict:
            elt = f"{elt}: {self.expr(inner, depth)}"
        text = f"{open_}{elt} for {target} in ({first_iter})"
        if self.coin():
            text += f" if ({self.expr(inner, depth)})"
        if self.coin():
            text += f" for k in ({self.expr(inner, depth)})"
        return text + close

    def fstring(self, ctx: Ctx, depth: int) -> str:
        triple = self.upto(3) == 0
        quote = '"""' if triple else '"'
        inner = replace(ctx, fstring=True, oneline=True)
        parts = []
        for _ in range(1 + self.upto(2)):
            parts.append(self.pick(FSTRING_TEXT))
            if triple and self.coin():
                parts.append("\n")
            form = self.upto(5)
            value = self.expr(inner, depth) if form != 3 else ""
            if value.startswith("{"):
                value = " " + value
            if form == 0:
                parts.append(f"{{{value}!r}}")
            elif form == 1:
                parts.append(f"{{{value}:>{{{self.expr(inner, depth)}}}}}")
            elif form == 2:
                parts.append(f"{{{value}:a@(b)}}")  # the format spec is text
            elif form == 3:
                debug = self.new_id()
                value = self.expr(replace(inner, fdebug=debug), depth)
                value = " " + value if value.startswith("{") else value
                space, tail = self.pick([("", ""), (" ", " "), ("", "!r")])
                parts.append(f"{{{value}{space}\x06{debug}\x01={tail}}}")
            else:
                parts.append(f"{{{value}}}")
        return f"f{quote}{''.join(parts)}{quote}"

    # -- statements --

    def body(self, ctx: Ctx, depth: int) -> list[str]:
        ctx = replace(ctx, indent=ctx.indent + "    ")
        statements = [self.statement(ctx, depth) for _ in range(1 + self.upto(2))]
        if ctx.generator and ctx.scope == "function":
            statements.insert(self.upto(len(statements)), [f"{ctx.indent}yield {self.expr(ctx, 1)}"])
        return [line for statement in statements for line in statement]

    def simple(self, ctx: Ctx, depth: int) -> str:
        kind = self.upto(20)
        e = lambda: self.expr(ctx, depth)  # noqa: E731
        in_function = ctx.scope == "function"
        if kind <= 3:
            return e()
        if kind == 4:
            return f"{self.name()} = {e()}"
        if kind == 5:
            return f"{self.name()}: {self.expr(replace(ctx, annotation=True), depth)} = {e()}"
        if kind == 6:
            return f"{self.name()} {self.pick(['+=', '@=', '='])} {e()}"
        if kind == 7:
            return f"{attr_base(self.primary(ctx, depth))}.attr = {e()}"
        if kind == 8:
            return f"{self.name()}[{e()}] = {e()}"
        if kind == 9:  # a non-atomic call as the target itself: rejected
            target = self.target_call(ctx, depth)
            form = self.upto(4)
            if form == 2:
                return f"del {target}"
            prefixes = [f"{target} = ", f"{target} += ", "", f"({self.name()}, {target}) = ", f"{target}: int = "]
            return prefixes[form] + e()
        if kind == 10 and in_function:
            with_value = not (ctx.generator and ctx.is_async) and self.coin()
            return f"return {e()}" if with_value else "return"
        if kind == 11:
            return f"assert {e()}, {e()}"
        if kind == 12:
            return f"raise {e()}"
        if kind == 13 or kind == 14:
            return self.sibling(ctx, depth)
        if kind == 15:
            return self.pick(["sibling = 1", "sibling(x)", "sibling.x = 2", "f(sibling)", "y = sibling"])
        if kind == 16:  # 'sibling' where it is not a statement: rejected at 'sibling'
            at = self.new_id()
            self.sites.append(Site(False, (at,)))
            call = f"{self.primary(ctx, 0)}\x00{self.new_id()}\x01({self.arguments(replace(ctx, oneline=True), 0)})"
            return self.pick([f"y = \x02{at}\x01{call}", f"\x02{at}\x01{call}.m", f"\x02{at}\x01{call} + 1",
                              f"\x02{at}\x01{self.primary(ctx, 0)}({self.arguments(replace(ctx, oneline=True), 0)})",
                              f"g(\x02{at}\x01{call})"])
        if kind == 17:
            at = self.new_id()
            self.sites.append(Site(False, (at,)))
            return f"\x06{at}\x01__con_{self.pick(['await__', 'x', 'scope__'])} = 1"
        if kind == 18:  # a keyword right before '@(': never a non-atomic call
            return f"{self.pick(['None', 'True'])}@({e()})"
        return "pass"

    def sibling(self, ctx: Ctx, depth: int) -> str:
        kw = self.new_id()
        self.sites.append(Site(ctx.scope == "function" and not ctx.generator, (kw,)))
        # PRIMARY starts with a name: 'sibling (f)@(x)' is the call 'sibling(f)' (docs/spec.md §1.2).
        primary = self.name()
        form = self.upto(3)
        if form == 1:
            primary += ".m"
        elif form == 2:
            primary += f"[{self.expr(ctx, depth)}]"
        elif form == 3:
            primary = self.con_call(ctx, depth, primary) + ".m"
        return f"\x02{kw}\x01{primary}\x00{self.new_id()}\x01({self.arguments(ctx, depth)})"

    def statement(self, ctx: Ctx, depth: int) -> list[str]:
        ind = ctx.indent
        e = lambda: self.expr(ctx, max(depth, 1))  # noqa: E731
        kind = self.upto(14) if depth > 0 else 0
        sub = depth - 1
        if kind <= 4:
            line = self.simple(ctx, max(depth, 1))
            if self.upto(4) == 0:
                line += "; " + self.simple(ctx, 1)
            if self.upto(5) == 0:
                line += "  # f@(x); sibling g@(y)"
            return [ind + line]
        if kind == 5:
            return [f"{ind}if {e()}:", *self.body(ctx, sub), f"{ind}elif {e()}: {self.simple(ctx, 1)}",
                    f"{ind}else:", *self.body(ctx, sub)]
        if kind == 6:
            return [f"{ind}while {e()}:", *self.body(ctx, sub)]
        if kind == 7:
            prefix = "async " if ctx.is_async and ctx.scope == "function" and self.coin() else ""
            return [f"{ind}{prefix}for {self.pick(['i', 'i, j'])} in {e()}:", *self.body(ctx, sub),
                    f"{ind}else:", *self.body(ctx, sub)]
        if kind == 8:
            prefix = "async " if ctx.is_async and ctx.scope == "function" and self.coin() else ""
            return [f"{ind}{prefix}with {e()} as w, {e()}:", *self.body(ctx, sub)]
        if kind == 9:
            lines = [f"{ind}try:", *self.body(ctx, sub)]
            if self.upto(3):
                lines += [f"{ind}except {e()} as err:", *self.body(ctx, sub)]
            else:  # no return in an except* block: an expression will do
                lines += [f"{ind}except* {e()} as err:", f"{ind}    {e()}"]
            return lines + [f"{ind}finally:", *self.body(ctx, sub)]
        if kind == 10:
            return [f"{ind}match {e()}:", f"{ind}    case [i, *_] if {e()}:",
                    *self.body(replace(ctx, indent=ind + "    "), sub),
                    f"{ind}    case _:", *self.body(replace(ctx, indent=ind + "    "), sub)]
        if kind == 11 or kind == 12:
            return self.function(ctx, sub)
        if kind == 13:
            return self.class_(ctx, sub)
        return [f"{ind}if {e()}: {self.simple(ctx, 1)}"]

    def decorators(self, ctx: Ctx, depth: int) -> list[str]:
        out = []
        for _ in range(self.upto(2)):
            out.append(f"{ctx.indent}@{'(' + self.name() + ')' if self.coin() else self.expr(ctx, depth)}")
        return out

    def function(self, ctx: Ctx, depth: int) -> list[str]:
        is_async = self.upto(3) == 0
        generator = self.upto(4) == 0
        ann = replace(ctx, annotation=True)
        params = []
        if self.coin():
            params.append(f"p: {self.expr(ann, depth)}" if self.coin() else "p")
        if self.coin():
            params.append(f"q={self.expr(ctx, depth)}")
        returns = f" -> {self.expr(ann, depth)}" if self.upto(3) == 0 else ""
        inner = replace(ctx, scope="function", generator=generator, is_async=is_async, in_comp=False,
                        fstring=False, fdebug=None, oneline=False)
        head = f"{ctx.indent}{'async ' if is_async else ''}def fn{self.new_id()}({', '.join(params)}){returns}:"
        return [*self.decorators(ctx, depth), head, *self.body(inner, depth)]

    def class_(self, ctx: Ctx, depth: int) -> list[str]:
        bases = f"({self.expr(ctx, depth)})" if self.coin() else ""
        inner = replace(ctx, scope="class", generator=False, is_async=False, in_comp=False)
        return [*self.decorators(ctx, depth), f"{ctx.indent}class C{self.new_id()}{bases}:",
                *self.body(inner, depth)]

    def module(self) -> str:
        ctx = Ctx()
        lines = []
        for _ in range(1 + self.upto(3)):
            kind = self.upto(5)
            if kind <= 2:
                lines.extend(self.function(ctx, 2))
            elif kind == 3:
                lines.extend(self.class_(ctx, 2))
            else:
                lines.extend(self.statement(ctx, 2))
        return "\n".join(lines) + "\n"


@st.composite
def con_programs(draw):
    gen = ProgramGen(draw)
    text = gen.module()
    return text, gen.sites


def check_con_program(text: str, sites: list[Site]):
    """The whole oracle for one generated program; returns the compiled code or None."""
    source, reference, positions = resolve(text)
    note(f"source:\n{source}")
    expected_ok = all(site.ok for site in sites)
    try:
        code = compile_quietly(source)
    except SyntaxError as error:
        note(f"error: {error!r} {error.lineno}:{error.offset}")
        check_syntax_error(error, source)
        assert not expected_ok, f"rejected valid con code: {error!r} at {error.lineno}:{error.offset}"
        assert is_con_error(error), f"CPython rejected the rewritten text: {error!r}"
        allowed = {positions[i] for site in sites if not site.ok for i in site.accept}
        assert error_place(error) in allowed, \
            f"error at {error_place(error)}, not at a rejected site {sorted(allowed)}: {error.msg}"
        return None
    assert expected_ok, "compiled con syntax that docs/spec.md §1.1/§1.2 reject: " + repr(
        [s for s in sites if not s.ok])
    ref_code = compile_plain(reference)
    assert ref_code is not None, f"reference does not compile:\n{reference}"
    assert_awaits_where_calls_were(code, ref_code)
    return code


@fuzz_settings(150)
@given(con_programs())
def test_generated_con_programs_compile_right_or_fail_at_the_site(program):
    check_con_program(*program)


# -- random mutations of generated valid programs --------------------------------------------

_PRIMARY_END = {tokenize.NAME, tokenize.NUMBER, tokenize.STRING}
if not PY311:
    _PRIMARY_END.add(tokenize.FSTRING_END)


def ends_primary(tok) -> bool:
    """docs/spec.md §1.1, written out independently of the token layer: a name that is not a
    keyword (None, True, False are keywords), a literal (the ellipsis is one), a string or
    f-string end, ')' or ']'."""
    if tok.type == tokenize.NAME:
        return not keyword.iskeyword(tok.string)
    if tok.type == tokenize.OP:
        return tok.string in (")", "]", "...")
    return tok.type in _PRIMARY_END


def tokens_of(source: str):
    try:
        return list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return None


@st.composite
def mutated_programs(draw):
    """(sentinel text, number of sites) from a hypothesmith program with '@(' put in."""
    source = draw(MUTATION_BASES.filter(without_con_syntax))
    assume(compile_plain(source) is not None and "\r" not in source.replace("\r\n", ""))
    tokens = tokens_of(source)
    assume(tokens is not None)
    lines = io.StringIO(source).readlines()
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(pos):
        return starts[pos[0] - 1] + pos[1]

    closers, stack = {}, []
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.OP and tok.string in "([{":
            stack.append(i)
        elif tok.type == tokenize.OP and tok.string in ")]}" and stack:
            closers[stack.pop()] = i
    calls = [i for i, tok in enumerate(tokens) if i and tok.string == "(" and tok.type == tokenize.OP
             and tokens[i - 1].end == tok.start and ends_primary(tokens[i - 1])]
    statement_calls = [i for i in calls if tokens[i - 1].type == tokenize.NAME
                       and (i == 1 or tokens[i - 2].type in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT,
                                                            tokenize.DEDENT) or tokens[i - 2].string in (";", ":"))]
    anywhere = [i for i, tok in enumerate(tokens)
                if tok.type in (tokenize.NAME, tokenize.NUMBER, tokenize.STRING, tokenize.OP)
                and tok.string not in ("(", "[", "{", "@")]
    edits = []  # (offset, order, text)
    ids = iter(range(1, 10**6))
    if calls:
        for i in draw(st.lists(st.sampled_from(calls), max_size=4, unique=True)):
            edits.append((offset(tokens[i].start), 1, f"\x00{next(ids)}\x01"))
            edits.append((offset(tokens[closers[i]].end), 0, "\x03"))
    if statement_calls and draw(st.booleans()):
        i = draw(st.sampled_from(statement_calls))
        if not any(e[0] == offset(tokens[i].start) for e in edits):
            edits.append((offset(tokens[i - 1].start), 2, f"\x02{next(ids)}\x01"))
            edits.append((offset(tokens[i].start), 1, f"\x00{next(ids)}\x01"))
    if anywhere:
        for i in draw(st.lists(st.sampled_from(anywhere), max_size=2, unique=True)):
            args = draw(st.sampled_from(["", "x", "*a, k=1", "y\x00{}\x01(z)\x03"]))
            args = args.format(next(ids))
            end = offset(tokens[i].end)
            if ends_primary(tokens[i]):
                edits.append((end, 3, f"\x00{next(ids)}\x01({args})\x03"))
            else:
                edits.append((end, 3, f"@({args})"))
    assume(edits)
    text = source
    for pos, _, piece in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        text = text[:pos] + piece + text[pos:]
    return text


@fuzz_settings(25)
@given(mutated_programs())
def test_mutated_programs_compile_right_or_fail_plausibly(text):
    source, reference, positions = resolve(text)
    note(f"source:\n{source}")
    try:
        code = compile_quietly(source)
    except SyntaxError as error:
        note(f"error: {error!r} {error.lineno}:{error.offset}")
        check_syntax_error(error, source)
        if is_con_error(error):
            # It names a line that holds con syntax, at or before some '@' or 'sibling'.
            place = error_place(error)
            assert any(place[0] == line and place[1] <= col or place[0] < line
                       for line, col in positions.values()), (place, positions)
        return
    ref_code = compile_plain(reference)
    if ref_code is None:  # e.g. '@(' put where the reference is not valid Python either
        return
    assert_awaits_where_calls_were(code, ref_code)


# ---------------------------------------------------------------------------------------
# 3. Compiled programs never crash the interpreter when run
# ---------------------------------------------------------------------------------------

# Runs in a subprocess: reads JSON sources, one a line; compiles each with the pipeline,
# runs the module with every free name bound to a universal stand-in, then calls every
# function it defined and drives the coroutines (send, throw, close).  Ordinary exceptions
# are the programs' business; it reports what only broken bytecode raises.  A crash kills
# it, which the test sees as EOF.
DRIVER = r'''
import builtins, faulthandler, inspect, json, sys, types, warnings
faulthandler.enable()
sys.setrecursionlimit(250)
warnings.simplefilter("ignore")
from conhook._compiler.pipeline import compile_con

class Budget(Exception):
    """Raised when a program has run long enough: 'while [x]:' never stops by itself."""

class Univ:
    flips = 0
    calls = 0
    def __call__(self, *args, **kwargs):
        Univ.calls += 1
        if Univ.calls > 20000:
            raise Budget
        if len(args) == 1 and not kwargs and isinstance(args[0], (types.FunctionType, type)):
            return args[0]  # a decorator keeps what it decorates
        return self
    def __await__(self):
        yield "tick"
        return self
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self
    def __getitem__(self, key): return self
    def __setitem__(self, key, value): pass
    def __iter__(self): return iter((self, self))
    def __aiter__(self): return AIter()
    def __enter__(self): return self
    def __exit__(self, *exc): return False
    async def __aenter__(self): return self
    async def __aexit__(self, *exc): return False
    def __bool__(self):
        Univ.calls += 1
        if Univ.calls > 20000:
            raise Budget
        Univ.flips += 1
        return Univ.flips % 3 == 1
    def __len__(self): return 2
    def __index__(self): return 0
    def __hash__(self): return 0
    def __contains__(self, item): return True
    def __mro_entries__(self, bases): return ()
    def __format__(self, spec): return "u"
    def __repr__(self): return "U"

def _same(self, *args): return self
for _name in ("add radd sub rsub mul rmul matmul rmatmul truediv rtruediv floordiv mod pow rpow "
              "and or xor lshift rshift iadd imatmul eq ne lt le gt ge neg pos invert abs").split():
    setattr(Univ, f"__{_name}__", _same)

class AIter:
    def __init__(self): self.left = 2
    def __aiter__(self): return self
    async def __anext__(self):
        self.left -= 1
        if self.left < 0:
            raise StopAsyncIteration
        return U

U = Univ()
PROBLEMS = []

def judge(exc):
    if isinstance(exc, SystemError) or "__con_" in str(exc):
        PROBLEMS.append(f"{type(exc).__name__}: {exc}")

def drive(obj, mode):
    if inspect.iscoroutine(obj) or inspect.isgenerator(obj):
        step = (lambda: obj.send(None)) if inspect.iscoroutine(obj) else (lambda: next(obj))
        try:
            for n in range(60):
                step()
                if mode == 1 and n == 1:
                    obj.throw(ValueError("fuzz"))
                if mode == 2 and n == 1:
                    break
        except (StopIteration, Exception) as exc:
            judge(exc)
        try:
            obj.close()
        except Exception as exc:
            judge(exc)

class Scope:
    def start(self, fn, *args, **kwargs):
        Univ.calls += 1
        if Univ.calls > 20000:
            raise Budget
        drive(fn(*args, **kwargs), 0)
    async def failed(self, exc):
        await U
        return True
    async def join(self):
        await U

class Runtime:
    @staticmethod
    def prejoin():
        return Scope()

def call(fn, mode):
    # The required parameters, read from the code object: inspect.signature would evaluate
    # the annotations, which 3.14 defers, and a generated one may fail when asked for.
    code = fn.__code__
    args = [U] * (code.co_argcount - len(fn.__defaults__ or ()))
    kwonly = code.co_varnames[code.co_argcount:code.co_argcount + code.co_kwonlyargcount]
    kwargs = {name: U for name in kwonly if name not in (fn.__kwdefaults__ or {})}
    try:
        drive(fn(*args, **kwargs), mode)
    except Exception as exc:
        judge(exc)

def names(code):
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from names(const)

for line in sys.stdin:
    PROBLEMS.clear()
    Univ.flips = Univ.calls = 0
    faulthandler.dump_traceback_later(30, exit=True)
    code = compile_con(json.loads(line), "fuzzed.py")
    ns = {"__name__": "fuzzed", "__con__": Runtime}
    ns.update((n, U) for n in names(code) if not hasattr(builtins, n) and n != "__con__")
    try:
        exec(code, ns)
    except Exception as exc:
        judge(exc)
    functions = [v for v in list(ns.values()) if isinstance(v, types.FunctionType)]
    functions += [v for c in list(ns.values()) if isinstance(c, type) for v in vars(c).values()
                  if isinstance(v, types.FunctionType)]
    for fn in functions:
        for mode in (0, 1, 2):
            call(fn, mode)
    faulthandler.cancel_dump_traceback_later()
    print(json.dumps({"functions": len(functions), "problems": PROBLEMS}), flush=True)
'''

ROOT = Path(__file__).resolve().parent.parent


class Driver:
    """The subprocess that runs DRIVER; restarted after a crash."""

    def __init__(self, tmp: Path):
        self.stderr_path = tmp / "driver-stderr.txt"
        self.proc = None

    def start(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     cwd=ROOT, env=env)

    def run(self, source: str) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        try:
            self.proc.stdin.write(json.dumps(source) + "\n")
            self.proc.stdin.flush()
            reply = self.proc.stdout.readline()
        except BrokenPipeError:
            reply = ""
        if not reply:
            status = self.proc.wait()
            with contextlib.suppress(BrokenPipeError):  # (what it was sent, it never read)
                self.proc.stdin.close()
            self.proc.stdout.close()
            self.proc = None
            self.stderr.close()
            raise AssertionError(f"the interpreter died (exit status {status}) running:\n{source}\n"
                                 + self.stderr_path.read_text()[-4000:])
        return json.loads(reply)

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            self.proc.stdout.close()
            self.stderr.close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    d = Driver(tmp_path_factory.mktemp("driver"))
    yield d
    d.close()


def test_driver_reports_a_crash_as_a_failure(driver):
    with pytest.raises(AssertionError, match="interpreter died"):
        driver.run("import ctypes\nctypes.string_at(0)\n")
    result = driver.run("def f():\n    return g@(x)\n")  # and it starts again afterwards
    assert result == {"functions": 1, "problems": []}


@fuzz_settings(15)
@given(con_programs())
def test_compiled_con_programs_run_without_crashing(driver, program):
    code = check_con_program(*program)
    assume(code is not None)
    source = resolve(program[0])[0]
    result = driver.run(source)
    assert result["problems"] == [], result


# ---------------------------------------------------------------------------------------
# Regressions: what the fuzz found, minimised
# ---------------------------------------------------------------------------------------

def coroutine_flags(source):
    code = compile_quietly(textwrap.dedent(source))
    return [bool(c.co_flags & CO_COROUTINE) for c in all_code(code)][1:]


# A float literal ending in '.', and identifiers ending in characters that are no regex
# '\w' (a combining accent, a middle dot, a connector) or that 3.11's tokenizer splits:
# each was compiled as matrix multiplication.
TIGHT_CALLS_ONCE_MISSED = {
    "float-dot": "1.@(x)",
    "combining-accent": "e\u0301@(x)",
    "middle-dot": "x\u00b7@(x)",
    "connector": "a\u203f@(x)",
    "other-id-start": "\u2118@(x)",
    "arabic-digit": "x\u0660@(x)",
    "middle-dot-inside": "x\u00b7y@(x)",
}


@pytest.mark.parametrize("call", TIGHT_CALLS_ONCE_MISSED.values(), ids=TIGHT_CALLS_ONCE_MISSED.keys())
def test_every_tight_call_is_non_atomic(call):
    assert coroutine_flags(f"def f():\n    return {call}\n") == [True]
    with pytest.raises(SyntaxError) as info:
        compile_quietly(f"y = {call}\n")
    at = len("y = ") + call.index("@") + 1  # reported at the call's '@', 1-based
    assert (info.value.lineno, info.value.offset) == (1, at) and "module level" in info.value.msg


@pytest.mark.parametrize("call", TIGHT_CALLS_ONCE_MISSED.values(), ids=TIGHT_CALLS_ONCE_MISSED.keys())
def test_sibling_of_every_tight_call(call):
    code = compile_quietly(f"def f():\n    sibling {call}\n")
    assert "__con_scope__" in code.co_consts[0].co_varnames


# 3.11 looked for '@(' in f-string fields with a regex and counted braces: a '{' inside a
# string in a field hid the calls after it (compiled as matrix multiplication), and text
# that is no code (a string in a field, a format spec) was rejected.
FSTRING_CALLS = {
    "brace-in-string-before": ("f\"{'{'} {g@(x)}\"", 1),
    "brace-string-operand": ("f\"{'{'@()}\"", 1),
    "nested-fstring": ("f\"{f'{a@(b)}'}\"", 1),
    "format-spec-field": ("f\"{x:>{g@(y)}}\"", 1),
    "two-calls": ("f\"{a == g@(x)} {h@(y)!r}\"", 2),
    "triple-quoted-multiline": ('f"""\n{\n g@(x)}"""', 1),
}


@pytest.mark.parametrize("fstring,calls", FSTRING_CALLS.values(), ids=FSTRING_CALLS.keys())
def test_non_atomic_calls_in_fstrings(fstring, calls):
    source = f"def f():\n    return {fstring}\n"
    if PY311:
        with pytest.raises(SyntaxError) as info:
            compile_quietly(source)
        lineno, col = info.value.lineno, info.value.offset - 1
        assert source.splitlines()[lineno - 1][col:col + 2] == "@(", info.value
        assert "f-strings need Python 3.12" in info.value.msg
    else:
        code = compile_quietly(source).co_consts[0]
        assert census(code)["awaits"] == calls and code.co_flags & CO_COROUTINE


NOT_FSTRING_CALLS = {
    "string-in-field": "f\"{'a@(b)'}\"",
    "format-spec-text": "f\"{x:a@(b)}\"",
    "doubled-braces": "f\"{{a@(b)}}\"",
    "bytes-in-field": "f\"{b'a@(b)'}\"",
}


@pytest.mark.parametrize("fstring", NOT_FSTRING_CALLS.values(), ids=NOT_FSTRING_CALLS.keys())
def test_fstring_text_that_is_no_call_compiles_like_cpython(fstring):
    source = f"def f():\n    return {fstring}\ny = {fstring}\n"
    assert_same_code(compile_plain(source), compile_quietly(source))
