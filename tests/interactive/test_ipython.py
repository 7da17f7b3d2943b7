"""``%%con`` through IPython's ``InteractiveShell.run_cell_magic`` and ``run_cell``."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("IPython", reason="IPython is not installed (pip install -e '.[test]')")

from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

PRELUDE = """\
from con import idle, sleep, Event, Queue, tree

def double(x):
    idle@()
    return 2 * x
"""


@pytest.fixture(scope="module")
def shell():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "conhook")
    yield shell
    InteractiveShell.clear_instance()


@pytest.fixture
def ns(shell):
    shell.reset()
    shell.run_cell_magic("con", "", PRELUDE)
    return shell.user_ns


def test_nonatomic_calls_at_top_level_and_namespace_kept_between_cells(shell, ns):
    shell.run_cell_magic("con", "", "x = double@(21)\n")
    assert ns["x"] == 42
    shell.run_cell_magic("con", "", "y = double@(x) + 1\n")
    assert ns["y"] == 85
    assert shell.run_cell("x + y").result == 127  # and ordinary cells see them


def test_trailing_expression_is_the_value_shown(shell, ns):
    assert shell.run_cell_magic("con", "", "z = 1\ndouble@(z)\n") == 2
    assert shell.run_cell_magic("con", "", "double@(3);\n") is None  # ';' hides it, as in IPython
    assert shell.run_cell_magic("con", "", "w = double@(3)\n") is None
    result = shell.run_cell("%%con\ndouble@(5)\n", store_history=True)
    assert result.result == 10
    assert shell.user_ns["_"] == 10  # displayed like an ordinary cell's value: Out[n] and _


def test_siblings_are_prejoined_and_the_trailing_expression_runs_inside_the_cell(shell, ns):
    cell = """\
q = Queue(1)
got = []

def producer(q, n):
    for i in range(n):
        q.put@(i)

def consumer(q, n):
    for _ in range(n):
        got.append(q.get@())

sibling producer@(q, 3)
sibling consumer@(q, 2)
shape = tree()
q.get@()
"""
    # The cell's own get parks first (FIFO), so it takes the first item, while the threads live.
    assert shell.run_cell_magic("con", "", cell) == 0
    assert ns["got"] == [1, 2]
    assert ns["shape"] == ("bootstrap - <module>\n"
                           "                     | producer\n"
                           "                     | consumer")


def test_each_cell_gets_a_fresh_scheduler(shell, ns):
    shell.run_cell_magic("con", "", "idle@()\nfirst = tree()\n")
    shell.run_cell_magic("con", "", "idle@()\nsecond = tree()\n")
    assert ns["first"] == ns["second"] == "bootstrap - <module>"
    shell.run_cell_magic("con", "", "plain = tree()\n")  # no con syntax: still on a scheduler
    assert ns["plain"].startswith("bootstrap")


def test_exception_in_cell_propagates_with_the_cells_lines(shell, ns):
    cell = "a = 1\ndef fail():\n    idle@()\n    raise ValueError('boom')\nfail@()\n"
    result = shell.run_cell("%%con\n" + cell)
    assert isinstance(result.error_in_exec, ValueError)
    with pytest.raises(ValueError) as info:
        shell.run_cell_magic("con", "", cell)
    frames = [(entry.name, entry.lineno + 1) for entry in info.traceback if "Cell" in str(entry.path)
              or "ipython-input" in str(entry.path)]
    assert frames[-2:] == [("<module>", 6), ("fail", 5)]  # line 1 is the %%con line


def test_tracebacks_name_the_cell_that_ran(shell, ns):
    # Every frame of the cell's code is labelled with the cell's own number (In[n]), as the
    # line that runs the magic is.
    cell = "def fail():\n    raise ValueError('boom')\nfail@()\n"
    for _ in range(2):
        result = shell.run_cell("%%con\n" + cell, store_history=True)
        assert isinstance(result.error_in_exec, ValueError)
        labels = []
        tb = result.error_in_exec.__traceback__
        while tb is not None:
            labels.append(shell.compile.format_code_name(tb.tb_frame.f_code.co_filename))
            tb = tb.tb_next
        cells = [label for label in labels if label is not None]
        assert len(cells) >= 3 and set(cells) == {("Cell", f"In[{result.execution_count}]")}, labels


def test_syntax_error_points_at_the_cells_line_and_column(shell, ns):
    with pytest.raises(SyntaxError) as info:
        shell.run_cell_magic("con", "", "x = 1\ny = double@(x\nz = 2\n")
    error = info.value
    assert (error.lineno, error.text.rstrip("\n")) == (3, "y = double@(x")
    assert error.offset == 12  # the '(' that was never closed
    with pytest.raises(SyntaxError) as info:
        shell.run_cell_magic("con", "", "def gen():\n    yield double@(1)\n")
    assert (info.value.lineno, info.value.offset) == (3, 17)  # the call's '@'
    assert "generator" in info.value.msg


def test_a_cells_syntax_error_is_shown_as_a_plain_cells_is(shell, ns, capsys):
    # It fails before the cell runs (IPython's error_before_exec), and IPython shows it alone:
    # the cell, the line and the caret, with no frame of IPython's or the magic's.
    capsys.readouterr()
    result = shell.run_cell("%%con\nx = 1\ny = double@(x\n", store_history=True)
    assert isinstance(result.error_before_exec, SyntaxError) and result.error_in_exec is None
    shown = _without_colours(capsys.readouterr().out)
    plain = shell.run_cell("x = 1\ny = double(x\n", store_history=True)
    assert isinstance(plain.error_before_exec, SyntaxError)
    plain_shown = _without_colours(capsys.readouterr().out)
    assert "Traceback" not in shown and "run_cell_magic" not in shown and "_ipython" not in shown
    assert shown.splitlines()[:4] == [f"  Cell In[{result.execution_count}], line 3",
                                      "    y = double@(x", "               ^",
                                      "SyntaxError: '(' was never closed"], shown
    assert shown.count("\n") == plain_shown.count("\n")  # as many lines as a plain cell's error


def _frames_shown(text):
    """The frame headers of a traceback IPython printed, the cell numbers made alike."""
    return [re.sub(r"In\[\d+\]", "In[n]", line) for line in text.splitlines()
            if line.startswith(("Cell In[", "File ", "    [... skipping"))]


def _shape(text):
    return [re.sub(r"line \d+", "line L", line) for line in _frames_shown(text)]


def test_a_failing_cells_traceback_starts_at_the_cells_line_as_a_plain_cells_does(shell, ns, capsys):
    # Not at the line IPython runs the magic with (get_ipython().run_cell_magic(...)), and
    # without a note of the magic's hidden frames: the cell's line, then the frames below it.
    capsys.readouterr()
    body = "a = 1\ndef fail():\n    {}\n    raise ValueError('boom')\n{}\n"
    result = shell.run_cell("%%con\n" + body.format("idle@()", "fail@()"), store_history=True)
    assert isinstance(result.error_in_exec, ValueError)
    shown = _without_colours(capsys.readouterr().out)
    plain = shell.run_cell(body.format("pass", "fail()"), store_history=True)
    assert isinstance(plain.error_in_exec, ValueError)
    plain_shown = _without_colours(capsys.readouterr().out)
    assert _shape(shown) == _shape(plain_shown) == ["Cell In[n], line L", "Cell In[n], line L, in fail()"]
    n = result.execution_count
    assert _frames_shown(shown) == ["Cell In[n], line 6", "Cell In[n], line 5, in fail()"]
    assert "run_cell_magic" not in shown and f"Cell In[{n}], line 6\n" in shown
    # Shown once so: the same exception raised again by a plain cell is shown as usual.
    shell.user_ns["again"] = result.error_in_exec
    shell.run_cell("raise again", store_history=True)
    assert _frames_shown(_without_colours(capsys.readouterr().out))[0] == "Cell In[n], line 1"


def test_a_failure_of_the_scheduler_itself_is_shown_without_frames(shell, ns, capsys):
    # Deadlock (and the KeyboardInterrupt of a cell interrupted while it waited) is raised by
    # bootstrap once every thread has unwound: no frame of the cell's is left, and the line
    # that runs the magic and conhook's own frames are not shown instead.
    capsys.readouterr()
    result = shell.run_cell("%%con\nEvent().wait@()\n", store_history=True)
    assert type(result.error_in_exec).__name__ == "Deadlock"
    shown = _without_colours(capsys.readouterr().out)
    assert _frames_shown(shown) == [] and "run_cell_magic" not in shown and "conhook/" not in shown
    assert "bootstrap - <module> - wait" in shown


def _without_colours(text):
    return re.sub("\x1b\\[[0-9;]*m", "", text)


@pytest.fixture
def python_sigint_handler():
    """A test run started in the background inherits SIGINT ignored; a kernel has Python's handler."""
    import signal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_interrupt_stops_the_cell_cleanly(shell, ns, python_sigint_handler):
    # Ctrl-C (the kernel's interrupt) while the cell waits: every thread unwinds, then
    # KeyboardInterrupt; the next cell runs normally.
    cell = """\
import os, signal
log = []

def waiter():
    try:
        Event().wait@()
    finally:
        log.append("waiter unwound")

def interrupter():
    idle@()
    os.kill(os.getpid(), signal.SIGINT)
    sleep@(3600)

sibling waiter@()
sibling interrupter@()
"""
    with pytest.raises(KeyboardInterrupt):
        shell.run_cell_magic("con", "", cell)
    assert ns["log"] == ["waiter unwound"]
    assert shell.run_cell_magic("con", "", "double@(4)\n") == 8


def test_magic_takes_only_the_background_option(shell, ns):
    from IPython.core.error import UsageError
    with pytest.raises(UsageError, match="--background"):
        shell.run_cell_magic("con", "--fast", "pass\n")


def test_background_needs_a_loop_running_between_cells(shell, ns, capsys):
    # Terminal IPython runs no loop between cells: nothing could run a background thread there.
    from IPython.core.error import UsageError
    with pytest.raises(UsageError, match="Jupyter kernel"):
        shell.run_cell_magic("con", "--background", "sibling idle@()\n")
    shell.run_line_magic("con_threads", "")  # none: a fresh scheduler per cell here
    assert capsys.readouterr().out == "no background threads\n"


def test_runtime_name_is_hidden_from_who(shell, ns):
    assert "__con__" in ns and "__con__" in shell.user_ns_hidden
