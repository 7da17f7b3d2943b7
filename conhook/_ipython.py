"""``%load_ext conhook``: the ``%%con`` cell magic (docs/spec.md §2.4).

A thin adapter over the compile pipeline (``_toplevel``): the cell is compiled as
top-level con code and run as one call on a fresh scheduler, in the notebook's namespace.

* The cell's text is registered with IPython's compiler cache, so tracebacks and syntax
  errors say ``Cell In[n], line L`` and show the cell's lines.  Lines are numbered as the
  notebook numbers them: line 1 is the ``%%con`` line, the cell's first line is line 2.
* A failure is shown from the cell's own frame, as a plain cell's is: not from the line
  IPython runs the magic with (``get_ipython().run_cell_magic(...)``) and its hidden frames.
  The exception renders itself (``_render_traceback_``, which IPython and ipykernel honour)
  from there, once; what it carries is left as it is (``%tb`` and ``%debug`` see it all).
  A failure raised by ``bootstrap`` itself after every thread has unwound (``KeyboardInterrupt``
  of a cell interrupted while it waited, ``Deadlock``) has no frame of the cell's: it is shown
  with none, its message alone.
* The value of a trailing expression statement is the magic's return value, which IPython
  displays (``Out[n]``) as it displays an ordinary cell's; a trailing ``;`` hides it.
* The scheduler runs in the kernel's own thread, inside the cell's execution.  An
  ipykernel's asyncio loop is running there, but it is suspended while a cell executes and
  conhook never touches asyncio, so the two do not meet; the cell blocks the kernel as any
  cell does.  Interrupting the kernel (SIGINT) stops the cell as Ctrl-C stops a program:
  every thread unwinds, then the cell raises ``KeyboardInterrupt``.
"""
from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class

from . import _toplevel
from ._reserved_names import RUNTIME_NAME
from ._runtime.prejoin import prepare_namespace


@magics_class
class ConMagics(Magics):
    """The ``%%con`` cell magic."""

    @cell_magic
    def con(self, line, cell):
        """Run the cell as con code: its top level may make non-atomic calls (``x = f@()``)
        and start threads (``sibling g@()``); it runs to completion on a fresh scheduler
        in the notebook's namespace.  Interrupting the kernel stops every thread cleanly.
        """
        __tracebackhide__ = True
        if line.strip():
            raise UsageError(f"%%con takes no arguments, got {line.strip()!r}")
        shell = self.shell
        # Line 1 of what we compile is blank where the cell has its %%con line.
        code = _checked.pop(cell, None)  # compiled by _check_con_cells, before the cell ran
        if code is None:
            filename = shell.compile.cache(f"%%con\n{cell}", _cell_number(shell))
            try:
                code = _toplevel.compile_input("\n" + cell, filename, keep_result=True)
            except SyntaxError as error:
                raise error.with_traceback(None) from None  # without the pipeline's frames
        namespace = shell.user_ns
        if RUNTIME_NAME not in namespace:
            prepare_namespace(namespace)
            shell.user_ns_hidden[RUNTIME_NAME] = namespace[RUNTIME_NAME]  # not listed by %who
        try:
            return _toplevel.run_input(code, namespace)
        except BaseException as exc:
            _shown_from_the_cell(exc, code, shell)
            raise


def _shown_from_the_cell(exc, code, shell):
    """Have IPython show `exc` from the cell's frame (`code`'s) down, as a plain cell's."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code is not code:
        tb = tb.tb_next
    # (None: raised by bootstrap itself once every thread had unwound, as KeyboardInterrupt
    # and Deadlock are: no frame of the cell's is left to show, and none of ours is shown.)

    def render():
        del exc._render_traceback_  # once: re-raised later, it is shown as usual
        return shell.InteractiveTB.structured_traceback(type(exc), exc, tb, tb_offset=0)
    try:
        exc._render_traceback_ = render
    except AttributeError:  # (an exception without a __dict__ is shown as IPython shows it)
        pass


_checked: dict = {}  # the cell last compiled by _check_con_cells -> its code


def _cell_number(shell) -> int:
    """The number of the cell running (``In[n]``).  IPython 8.x and later count the next cell
    before running this one, so ``execution_count`` is one ahead; the running cell's own
    number is in its result, which the display hook holds while it runs."""
    running = getattr(shell.displayhook, "exec_result", None)
    number = getattr(running, "execution_count", None)
    return shell.execution_count if number is None else number


def _check_con_cells(shell):
    """An input transformer: a ``%%con`` cell with a syntax error fails before it runs, as a
    plain cell does, so that IPython shows the error alone (``Cell In[n], line L``, the line,
    the caret), not the magic's frames and IPython's above it."""

    def check(lines):
        if lines and lines[0].split() == ["%%con"]:
            cell = "".join(lines[1:])
            # (execution_count is the number of the cell about to run: counted when it runs)
            filename = shell.compile.cache(f"%%con\n{cell}", shell.execution_count)
            try:
                code = _toplevel.compile_input("\n" + cell, filename, keep_result=True)
            except SyntaxError as error:
                raise error.with_traceback(None) from None
            _checked.clear()
            _checked[cell] = code  # for the magic, which runs it
        return lines

    return check


def load_ipython_extension(ipython) -> None:
    """Register ``%%con`` with ``ipython`` (called by ``%load_ext conhook``)."""
    ipython.register_magics(ConMagics)
    ipython.input_transformers_cleanup.append(_check_con_cells(ipython))
