"""The bytecode layer's own bookkeeping: jumps whose size changes when sites are spliced
in, and regions around sites nested in try/except/finally, driven with throw/close."""
import ast
import dis
import re
import textwrap

import pytest

from conhook._compiler import ast_step, bytecode_layer, tokens
from pipeline_helpers import con, park, run


def _before_bytecode_stage(source, filename="<con-test>"):
    rewrite = tokens.rewrite_source(source, filename)
    tree = ast_step.transform(ast.parse(rewrite.source, filename), rewrite, filename)
    return compile(tree, filename, "exec", dont_inherit=True)


def _function_code(module_code, name):
    return next(c for c in module_code.co_consts if getattr(c, "co_name", None) == name)


def _extended_args(code):
    return sum(ins.opname == "EXTENDED_ARG" for ins in dis.get_instructions(code))


def _loop_source(sites):
    body = "\n".join(f"        total += park@({k})" for k in range(sites))
    return (f"def main(rounds):\n    total = i = 0\n    while i < rounds:\n        i += 1\n"
            f"        if i % 2:\n{textwrap.indent(body, '    ')}\n            continue\n{body}\n"
            f"    return total\n")


def test_jumps_that_change_size_across_many_sites():
    """A loop whose backward jump, and an ``if`` whose forward jump, cross up to 60
    sites: somewhere in the range a jump's argument crosses 255 once the sites are
    spliced in, so its EXTENDED_ARG comes or goes and the code after it moves."""
    changed = 0
    for sites in range(1, 61):
        source = _loop_source(sites)
        before = _function_code(_before_bytecode_stage(source), "main")
        after = bytecode_layer.make_nonatomic(before)
        changed += _extended_args(before) != _extended_args(after)
        ns = con(source)
        result, tags = run(ns["main"](3), send=lambda tag, step: tag)
        assert result == 3 * sum(range(sites)) and len(tags) == 3 * sites, sites
    assert changed, "no size of a jump changed: the test no longer covers the layout's fixed point"


TRY_NEST = """
def inner(log):
    try:
        try:
            log.append(park@("a"))
        except KeyError as error:
            log.append(("caught", error.args))
            log.append(park@("b"))
        finally:
            log.append("finally-1")
            log.append(park@("c"))
    except ValueError:
        log.append("outer-caught")
        log.append(park@("d"))
        raise
    finally:
        log.append("finally-2")
    return "returned"

def outer(log):
    try:
        return inner@(log)
    finally:
        log.append("outer-finally")
"""


def _twins():
    """``outer`` as con code, and as the same program written with async def/await."""
    plain = {"park": park}
    twin = re.sub(r"(\w+)@\(([^()]*)\)", r"(await \1(\2))", TRY_NEST).replace("def ", "async def ")
    exec(twin, plain)
    return con(TRY_NEST)["outer"], plain["outer"]


def _drive(function, steps):
    """Run ``function`` through ``steps`` (("send", value) / ("throw", type) / ("close",));
    return what happened at each step and the log."""
    log = []
    coro = function(log)
    happened = []
    for step in steps:
        try:
            if step[0] == "send":
                happened.append(("yield", coro.send(step[1])))
            elif step[0] == "throw":
                happened.append(("yield", coro.throw(step[1]("x"))))
            else:
                happened.append(("closed", coro.close()))
        except StopIteration as stop:
            happened.append(("return", stop.value))
        except BaseException as error:  # noqa: BLE001 - the outcome is what is compared
            happened.append(("raise", type(error).__name__, error.args))
    return happened, log


@pytest.mark.parametrize("steps", [
    [("send", None), ("send", 1), ("send", 2)],
    [("send", None), ("throw", KeyError), ("send", 2), ("send", 3)],
    [("send", None), ("throw", KeyError), ("throw", ValueError), ("send", 3), ("send", 4)],
    [("send", None), ("throw", KeyError), ("throw", ValueError), ("throw", ValueError), ("send", 5)],
    [("send", None), ("throw", KeyError), ("throw", ValueError), ("send", 3), ("close",)],
    [("send", None), ("throw", KeyError), ("close",)],
    [("send", None), ("send", 1), ("throw", ValueError), ("throw", KeyError)],
    [("send", None), ("close",)],
])
def test_sites_in_nested_try_except_finally_agree_with_async_def(steps):
    con_outer, plain_outer = _twins()
    got = _drive(con_outer, steps)
    assert got == _drive(plain_outer, steps)
    assert len(got[1]) >= 2  # the program ran into its regions, not just its first line
