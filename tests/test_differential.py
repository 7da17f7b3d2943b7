"""Differential fuzz: conhook against hand-written ``async def``.

A seeded generator writes random functions (assignments, arithmetic, if/else, loops
with break/continue, try/except/else/finally, with blocks, comprehensions, lambdas,
return, raise, calls into other generated non-atomic functions).  Each program is
rendered twice, line for line:

    con:    def f(x): ... leaf@(t) ... h1@(a) ...            through compile_con
    async:  async def f(x): ... (await leaf(t)) ... (await h1(a)) ...   through compile

Both are driven identically: at every suspension point (the awaited leaf yields a tag)
the driver sends a value, throws an exception or closes, by a schedule fixed by the
seed.  They must agree on every yielded tag, the result, the exception (type, args,
context chain) and every traceback frame: function, lines and the source text that
the columns point at.
"""
from __future__ import annotations

import random
import traceback
import warnings

import pytest

from conhook._compiler.pipeline import compile_con

PROGRAMS = 240          # per test run; each is driven under several schedules
SCHEDULES = 4
CHUNKS = 8


# -- what the generated code may use (the same objects for both renderings) ---------------

class Leaf:
    """The awaited leaf: yields its tag to the driver, returns what the driver sends."""

    def __init__(self, tag):
        self.tag = tag

    def __await__(self):
        return (yield self.tag)


class Boom(Exception):
    pass


class CM:
    """A context manager that records its exits and swallows KeyError if told to."""

    def __init__(self, log, swallow):
        self.log, self.swallow = log, swallow

    def __enter__(self):
        self.log.append("enter")
        return len(self.log)

    def __exit__(self, kind, value, tb):
        self.log.append(("exit", kind and kind.__name__))
        return self.swallow and kind is KeyError


def _namespace():
    return {"leaf": Leaf, "Boom": Boom, "CM": CM, "__name__": "fuzz"}


# -- the generator --------------------------------------------------------------------------

class Await:
    """A non-atomic call site, rendered as ``f@(args)`` or ``(await f(args))``."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def render(self, style):
        args = ", ".join(_render(a, style) for a in self.args)
        return f"{self.func}@({args})" if style == "con" else f"(await {self.func}({args}))"


class Expr:
    """Text with holes (``{}``) for sub-expressions, which may hold awaits."""

    def __init__(self, template, *parts):
        self.template, self.parts = template, parts

    def render(self, style):
        return self.template.format(*(_render(p, style) for p in self.parts))


def _render(node, style):
    return node if isinstance(node, str) else node.render(style)


class Generator:
    VARS = ("a", "b", "c", "x")
    EXCEPTIONS = ("ValueError", "KeyError", "Boom", "StopIteration", "ZeroDivisionError")

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.tags = 0
        self.helpers = 0  # helpers h0..h{helpers-1} exist and may be called

    def tag(self):
        self.tags += 1
        return str(self.tags)

    def chance(self, p):
        return self.rng.random() < p

    def expr(self, depth=0):
        r = self.rng.random()
        if depth > 2 or r < 0.3:
            return self.rng.choice(self.VARS + ("1", "2", "3"))
        if r < 0.5:
            return Await("leaf", [Expr("({}, {})", self.tag(), self.expr(depth + 1))])
        if r < 0.6 and self.helpers:
            return Await(f"h{self.rng.randrange(self.helpers)}", [self.expr(depth + 1)])
        if r < 0.65:
            return Expr("(lambda v: v * 2 + {})({})", self.rng.choice("0123"), self.expr(depth + 1))
        if r < 0.7:
            return Expr("max({}, {})", self.expr(depth + 1), self.expr(depth + 1))
        op = self.rng.choice(["({} + {})", "({} - {})", "({} * {} % 97)", "({} // {})", "({} % 7 or {})"])
        return Expr(op, self.expr(depth + 1), self.expr(depth + 1))

    def cond(self):
        return Expr(self.rng.choice(["{} % 3 == 0", "{} > 4", "{} & 1"]), self.expr(1))

    def comprehension(self):
        kind = self.rng.choice(["[{} for i in range({})]", "{{{} for i in range({})}}",
                                "{{i: {} for i in range({})}}",
                                "[{} for i in range({}) if i % 2]"])
        element = Expr("(i + {})", self.expr(1))
        return Expr(f"sum({kind})" if "i:" not in kind else f"sum({kind}.values())",
                    element, self.rng.choice("0123"))

    def block(self, depth, loop):
        """Statements (each a line: (indent, text-or-node)) of a suite."""
        lines = []
        for _ in range(self.rng.randint(1, 3)):
            lines.extend(self.statement(depth, loop))
        return lines

    def statement(self, depth, loop):
        r = self.rng.random()
        var = self.rng.choice("abc")
        if depth >= 3 or r < 0.35:
            return [(0, Expr(f"{var} = {{}}", self.expr()))]
        if r < 0.42:
            return [(0, Expr(f"{var} += {{}}", self.expr()))]
        if r < 0.47:
            return [(0, Expr(f"{var} = {{}}", self.comprehension()))]
        if r < 0.52:
            return [(0, Expr("return {}", self.expr()))]
        if r < 0.57:
            exc = self.rng.choice(self.EXCEPTIONS)
            return [(0, Expr(f"raise {exc}({{}})", self.expr(1)))]
        if r < 0.62 and loop:
            return [(0, Expr("if {}: " + self.rng.choice(["break", "continue"]), self.cond()))]
        if r < 0.7:
            lines = [(0, Expr("if {}:", self.cond()))] + self.indent(self.block(depth + 1, loop))
            if self.chance(0.5):
                lines += [(0, "else:")] + self.indent(self.block(depth + 1, loop))
            return lines
        if r < 0.77:
            return ([(0, Expr(f"for i{depth} in range({{}}):", self.rng.choice("0123")))]
                    + self.indent(self.block(depth + 1, True)))
        if r < 0.82:
            counter = f"n{depth}"
            return ([(0, f"{counter} = 0"), (0, f"while {counter} < {self.rng.choice('123')}:"),
                     (1, f"{counter} += 1")] + self.indent(self.block(depth + 1, True)))
        if r < 0.92:
            return self.try_statement(depth, loop)
        return ([(0, Expr("with CM(log, {}) as w:", self.rng.choice(["True", "False"])))]
                + self.indent(self.block(depth + 1, loop)))

    def try_statement(self, depth, loop):
        lines = [(0, "try:")] + self.indent(self.block(depth + 1, loop))
        handlers = self.rng.randint(0, 2)
        for _ in range(handlers):
            caught = self.rng.choice(["ValueError", "(KeyError, Boom)", "Exception",
                                      "ZeroDivisionError", "RuntimeError"])
            lines += [(0, f"except {caught} as e:"), (1, Expr("log.append(repr(e))"))]
            lines += self.indent(self.block(depth + 1, loop))
            if self.chance(0.2):
                lines.append((1, "raise"))
        if handlers and self.chance(0.4):
            lines += [(0, "else:")] + self.indent(self.block(depth + 1, loop))
        if not handlers or self.chance(0.5):
            lines += [(0, "finally:"), (1, "log.append('finally')")]
            lines += self.indent(self.block(depth + 1, loop))
        return lines

    @staticmethod
    def indent(lines):
        return [(level + 1, text) for level, text in lines]

    def function(self, name):
        start = Await("leaf", [Expr("({}, x)", repr(name))])
        body = [(0, Expr("a, b, c = x, {}, 2", start))] + self.block(0, False)
        body.append((0, "return (a, b, c)"))
        return [(-1, f"def {name}(x):")] + body

    def program(self):
        lines = [(-1, "log = []")]
        for index in range(self.rng.randint(0, 2)):
            lines += self.function(f"h{index}")
            self.helpers = index + 1
        lines += self.function("main")
        return lines


def render(lines, style):
    out = []
    for level, text in lines:
        text = _render(text, style)
        if style == "async" and text.startswith("def "):
            text = "async " + text
        out.append("    " * (level + 1) + text)
    return "\n".join(out) + "\n"


# -- driving ----------------------------------------------------------------------------------

def _exception_summary(error, filename, source_lines, depth=0):
    frames = []
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename != filename:
            continue
        frames.append((frame.name, frame.lineno, frame.end_lineno,
                       _normalised_segment(frame, source_lines)))
    summary = (type(error).__name__, repr(error.args), frames)
    if depth < 3:
        for link in (error.__cause__, error.__context__):
            summary += (None if link is None else _exception_summary(link, filename, source_lines, depth + 1),)
    return summary


def _normalised_segment(frame, lines):
    """The source text the frame's columns point at, with con and async spelling unified
    (``await``, ``@`` and the parentheses around each await dropped)."""
    if frame.colno is None or frame.lineno != frame.end_lineno:
        return None
    text = lines[frame.lineno - 1][frame.colno:frame.end_colno]
    return "".join(ch for ch in text.replace("await ", "") if ch not in "@()")


def drive(function, argument, seed, filename, source):
    """Run ``function(argument)`` under the schedule of ``seed``; every event in a list."""
    rng = random.Random(seed)
    lines = source.splitlines()
    coroutine = function(argument)
    events = []
    action, value = "send", None
    for step in range(300):
        try:
            if action == "send":
                tag = coroutine.send(value)
            elif action == "throw":
                tag = coroutine.throw(value)
            else:
                coroutine.close()
                events.append(("closed",))
                return events
        except StopIteration as stop:
            events.append(("return", stop.value))
            return events
        except BaseException as error:  # noqa: BLE001 - every outcome is compared
            events.append(("raise", _exception_summary(error, filename, lines)))
            return events
        events.append(("yield", tag))
        r = rng.random()
        if r < 0.75:
            action, value = "send", rng.randrange(10)
        elif r < 0.95:
            action = "throw"
            value = rng.choice([ValueError, KeyError, Boom, StopIteration, GeneratorExit])(step)
        else:
            action = "close"
    coroutine.close()
    events.append(("too many steps",))
    return events


def run_program(seed):
    """Both renderings of program ``seed`` under every schedule: (sources, events) each."""
    lines = Generator(seed).program()
    results = {}
    for style in ("con", "async"):
        source = render(lines, style)
        filename = f"<fuzz-{style}>"
        namespace = _namespace()
        try:
            with warnings.catch_warnings():  # 3.14 warns of 'return' in 'finally' (PEP 765)
                warnings.simplefilter("ignore", SyntaxWarning)
                code = compile_con(source, filename) if style == "con" else compile(source, filename, "exec")
            exec(code, namespace)
        except SyntaxError as error:
            results[style] = (source, ("SyntaxError", error.msg, error.lineno))
            continue
        runs = []
        for schedule in range(SCHEDULES):
            namespace["log"].clear()
            events = drive(namespace["main"], schedule, seed * 100 + schedule, filename, source)
            runs.append((events, list(namespace["log"])))
        results[style] = (source, runs)
    return results


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_con_agrees_with_async_def(chunk):
    suspensions = 0
    for seed in range(chunk, PROGRAMS, CHUNKS):
        results = run_program(seed)
        (con_source, con_runs), (async_source, async_runs) = results["con"], results["async"]
        assert con_runs == async_runs, (
            f"seed {seed}: conhook and async def disagree\n--- con\n{con_source}"
            f"--- async\n{async_source}")
        assert not isinstance(con_runs[0], str), f"seed {seed}: {con_runs}"
        suspensions += sum(e[0] == "yield" for run in con_runs for e in run[0])
    assert suspensions > PROGRAMS // CHUNKS


def test_generator_covers_the_grammar():
    """The generated programs hold every construct the fuzz is meant to exercise."""
    text = "".join(render(Generator(seed).program(), "con") for seed in range(PROGRAMS))
    for construct in ("leaf@(", "h0@(", "h1@(", "if ", "else:", "for ", "while ", "break",
                      "continue", "try:", "except ", "finally:", "raise\n", "with CM", "return ",
                      "raise StopIteration", "lambda", "for i in range", "{i: "):
        assert construct in text, construct
