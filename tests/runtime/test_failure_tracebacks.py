"""Where the traceback of a thread's failure points in its creator, and a thread that cannot
start (issue 12, items 3 and 4), in real programs run by ``python -m conhook``.

The creator's frame shows where the creator was when its prejoin caught the failure: the
non-atomic call it was blocked in (with the carets a failure of that very call gets), or, when
its body had finished, the wait at the function's end (the body's last statement, no carets);
never the ``def`` line.  A ``sibling`` that cannot start fails at the ``sibling`` statement,
with no frame of conhook's, also when the program prints the traceback itself.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

import conhook

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.dirname(os.path.abspath(conhook.__file__))


def run(tmp_path, source, *args):
    """Run `source` as a script under ``python -m conhook``; its stderr."""
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(source))
    proc = subprocess.run([sys.executable, "-m", "conhook", str(script), *args], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout == "" and "Traceback (most recent call last):" in proc.stderr, proc.stderr
    assert PACKAGE not in proc.stderr, proc.stderr  # no frame of conhook's
    return proc.stderr


def entry(stderr, function):
    """The lines that follow `function`'s ``File ...`` line: the source line and its carets, if any."""
    lines = stderr.splitlines()
    at = [i for i, line in enumerate(lines) if re.match(rf'  File ".*", line \d+, in {function}$', line)]
    assert len(at) == 1, stderr
    shown = [lines[at[0] + 1]]
    if set(lines[at[0] + 2].strip()) <= set("~^") and lines[at[0] + 2].strip():
        shown.append(lines[at[0] + 2])
    return lines[at[0]].rsplit(",", 2)[1].strip(), shown


PROGRAM = """
    import sys
    import traceback
    import con

    def fail():
        con.sleep@(0)
        raise KeyError("from the thread")

    def wait_here(how):
        if how == "direct":
            con.sleep@(0)
            raise KeyError("from the call")
        con.sleep@(3600)

    def second(x):
        pass

    def main(how, form):
        if how == "thread":
            sibling fail@()
        if form == "assignment":
            total = [wait_here@(how), 2]
        else:
            sibling second@(wait_here@(how))

    def printing(how, form):
        try:
            main@(how, form)
        except KeyError:
            traceback.print_exc()

    con.bootstrap(printing if sys.argv[3:] else main, sys.argv[1], sys.argv[2])
    """


@pytest.mark.parametrize("form, line", [("assignment", "total = [wait_here@(how), 2]"),
                                        ("sibling", "sibling second@(wait_here@(how))")])
@pytest.mark.parametrize("printed", [False, True], ids=["uncaught", "print_exc"])
def test_a_creator_blocked_in_a_call_is_shown_at_that_call(tmp_path, form, line, printed):
    extra = ["print"] if printed else []
    where, shown = entry(run(tmp_path, PROGRAM, "thread", form, *extra), "main")
    assert shown[0].strip() == line
    # The same line and carets as a failure of that very call.
    assert (where, shown) == entry(run(tmp_path, PROGRAM, "direct", form, *extra), "main")
    assert "^" in shown[1]


def test_a_creator_that_finished_its_body_is_shown_at_its_end(tmp_path):
    stderr = run(tmp_path, """
        import con

        def fail():
            con.sleep@(0)
            raise KeyError("from the thread")

        def main():
            sibling fail@()
            for n in range(2):
                if n > 5:
                    print(n)

        con.bootstrap(main)
        """)
    assert entry(stderr, "main") == ("line 10", ["    for n in range(2):"])  # no carets
    assert "def main" not in stderr


def test_every_level_of_a_chain_is_shown_where_it_was(tmp_path):
    stderr = run(tmp_path, """
        import con

        def leaf():
            con.sleep@(0)
            raise KeyError("the end")

        def link(n):
            if n:
                sibling link@(n - 1)
            else:
                sibling leaf@()
            con.sleep@(3600)

        con.bootstrap(link, 2)
        """)
    frames = re.findall(r'  File ".*", line (\d+), in (\w+)\n(.*)\n', stderr)
    assert [(line, name, text.strip()) for line, name, text in frames] == [
        ("13", "link", "con.sleep@(3600)")] * 3 + [("6", "leaf", 'raise KeyError("the end")')]
    assert stderr.count("~~~~~~~~~^^~~~~~") == 3


CANNOT_START = """
    import sys
    import traceback
    import con

    handler = None

    def worker(a, b):
        con.sleep@(0)

    def main(what):
        if what == "none":
            sibling handler@()
        else:
            sibling worker@(1)
        con.sleep@(1)

    def printing(what):
        try:
            main@(what)
        except TypeError:
            traceback.print_exc()

    con.bootstrap(printing if sys.argv[2:] else main, sys.argv[1])
    """


@pytest.mark.parametrize("what, message", [
    ("none", "TypeError: sibling cannot start a thread running None: it is not callable "
             "(a thread runs a function: sibling f@(args))"),
    ("arguments", "TypeError: worker() missing 1 required positional argument: 'b'")])
@pytest.mark.parametrize("printed", [False, True], ids=["uncaught", "print_exc"])
def test_a_thread_that_cannot_start_fails_at_the_sibling_statement(tmp_path, what, message, printed):
    stderr = run(tmp_path, CANNOT_START, what, *(["print"] if printed else []))
    lines = stderr.splitlines()
    assert lines[-1] == message
    assert re.match(r'  File ".*prog.py", line 1[35], in main$', lines[-3]), stderr
    assert lines[-2].strip() in ("sibling handler@()", "sibling worker@(1)")
