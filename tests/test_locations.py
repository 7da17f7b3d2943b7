"""A non-atomic call over several lines stands where CPython's own ``await`` stands: from its
first line to its last, with the columns of what the user wrote (issue 12, item 23)."""
from __future__ import annotations

import sys
import traceback

from pipeline_helpers import con

CON = """
async def g(a, b):
    if a == "raise":
        raise KeyError(a)
    return await Park("g")

def f(a):
    x = g@(
        a,
        2)
    return x
"""
# The same function as CPython compiles it, with 'await' where con has '@', on the same lines.
PLAIN = CON.replace("x = g@(", "x = await g(").replace("def f(a):", "async def f(a):")


def frame_of_f(namespace, a):
    """(positions of f's frame while g is suspended, of f's entry when g raises)."""
    coro = namespace["f"](a)
    if a == "raise":
        try:
            coro.send(None)
        except KeyError as error:
            entry = next(e for e in traceback.extract_tb(error.__traceback__) if e.name == "f")
            return entry.lineno, entry.end_lineno
    assert coro.send(None) == "g"
    lineno = coro.cr_frame.f_lineno
    coro.close()
    return lineno


def test_a_suspended_multi_line_call_reports_its_first_line():
    assert frame_of_f(con(CON), "go") == frame_of_f(con(PLAIN), "go") == 8


def test_a_multi_line_call_that_raises_spans_its_lines_in_the_traceback():
    assert frame_of_f(con(CON), "raise") == frame_of_f(con(PLAIN), "raise") == (8, 10)


def test_the_traceback_underlines_the_call_as_the_user_wrote_it():
    coro = con(CON)["f"]("raise")
    try:
        coro.send(None)
    except KeyError as error:
        entry = next(e for e in traceback.extract_tb(error.__traceback__) if e.name == "f")
    # 'x = g@(' : g stands at column 8 of line 8; the call ends after ')' on line 10.
    assert (entry.lineno, entry.colno, entry.end_lineno, entry.end_colno) == (8, 8, 10, 10)


def test_line_events_are_cpythons():
    def lines_of(namespace):
        seen = []

        def tracer(frame, event, arg):
            if frame.f_code.co_name == "f":
                if event == "line":
                    seen.append(frame.f_lineno)
                return tracer
            return None

        coro = namespace["f"]("go")
        sys.settrace(tracer)
        try:
            coro.send(None)
            try:
                coro.send("resumed")
            except StopIteration:
                pass
        finally:
            sys.settrace(None)
        return seen

    assert lines_of(con(CON)) == lines_of(con(PLAIN))
