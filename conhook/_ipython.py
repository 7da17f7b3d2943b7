"""``%load_ext conhook``: the ``%%con`` cell magic and its line magics (docs/spec.md §2.4).

A thin adapter over the compile pipeline (``_toplevel``): the cell is compiled as top-level
con code and run as one call in the notebook's namespace.  Where it runs:

* In Jupyter (an asyncio loop runs in the kernel's thread, autoawait on), on that loop: the input
  transformer turns the cell into ``await __con_cell__()``, which IPython runs with autoawait;
  it runs the compiled cell as an input of the notebook's session (``_runtime.session``: one
  kernel hosted on the loop for the kernel's life), so ``con.aio@`` works.  ``%%con --background``
  compiles the cell so that its top-level ``sibling`` threads are the session's background threads;
  ``%con_threads`` lists them, ``%con_stop`` interrupts them (a cell that is that line alone
  becomes ``await __con_stop__(...)``, which waits until they have finished).
* Elsewhere (terminal IPython: no loop runs between cells), on a fresh scheduler, as ``bootstrap``
  runs a program; ``--background`` is refused there.

Both ways:

* The cell's text is registered with IPython's compiler cache, so tracebacks and syntax
  errors say ``Cell In[n], line L`` and show the cell's lines.  Lines are numbered as the
  notebook numbers them: line 1 is the ``%%con`` line, the cell's first line is line 2.
* A failure is shown from the cell's own frame, as a plain cell's is: not from the line
  IPython runs the magic with (``get_ipython().run_cell_magic(...)``, or ``await __con_cell__()``)
  and its hidden frames.  The exception renders itself (``_render_traceback_``, which IPython and
  ipykernel honour) from there, once; what it carries is left as it is (``%tb`` and ``%debug``
  see it all).  A failure raised after every thread has unwound (``KeyboardInterrupt`` of a cell
  interrupted while it waited, ``Deadlock``) has no frame of the cell's: it is shown with none,
  its message alone.
* The value of a trailing expression statement is the magic's (or the awaited runner's) value,
  which IPython displays (``Out[n]``) as it displays an ordinary cell's; a trailing ``;`` hides it.
* Interrupting the kernel (SIGINT) stops the cell as Ctrl-C stops a program: its threads unwind,
  then the cell raises ``KeyboardInterrupt`` (background threads run on).
"""
from __future__ import annotations

import asyncio
import atexit

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from . import _toplevel
from ._reserved_names import RESULT_NAME, RUNTIME_NAME
from ._runtime.prejoin import prepare_namespace
from ._runtime.threads import thread_name

CELL_RUNNER = "__con_cell__"  # what a hosted %%con cell becomes: ``await __con_cell__()``
STOPPER = "__con_stop__"      # and a %con_stop cell: ``await __con_stop__('name', ...)``
BACKGROUND = ("--background", "-b")


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
        if _background_option(line.split()):
            raise UsageError("%%con --background leaves threads running after the cell, on the "
                             "running asyncio loop of a Jupyter kernel (ipykernel); here no loop "
                             "runs between cells: start them with `sibling` in a cell without it")
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


    @line_magic
    def con_threads(self, line):
        """List the background threads of the notebook's session (``%%con --background``)."""
        names = [thread_name(thread) for thread in _background_threads()]
        print("\n".join(names) if names else "no background threads")

    @line_magic
    def con_stop(self, line):
        """Interrupt the background threads named (all of them if none is named).  In Jupyter a
        cell that is this line alone waits until they have finished (their ``finally`` blocks run)."""
        threads = _threads_named(line.split())
        if threads:
            _session.stop_now(threads)


def _background_option(words):
    """Whether %%con's options ask for --background; UsageError for any other word."""
    for word in words:
        if word not in BACKGROUND:
            raise UsageError(f"%%con takes one option, --background (-b), not {word!r}")
    return bool(words)


_session = None  # the Session on the running loop of this kernel (ipykernel's), once a cell needed it


def _session_here():
    global _session
    loop = asyncio.get_running_loop()
    if _session is None or _session.loop is not loop or _session.closing.done():
        from ._runtime.session import Session
        _session = Session(loop)
        atexit.register(_session.abandon)  # kernel shutdown: threads closed, finally blocks run
    return _session


def _background_threads():
    return [] if _session is None else _session.background_threads()


def _threads_named(names):
    threads = _background_threads()
    if not names:
        return threads
    chosen = [thread for thread in threads if thread_name(thread) in names]
    missing = set(names) - {thread_name(thread) for thread in chosen}
    if missing:
        raise UsageError(f"no background thread named {', '.join(sorted(missing))}; running: "
                         f"{', '.join(thread_name(t) for t in threads) or 'none'} (see %con_threads)")
    return chosen


def _hosted(shell) -> bool:
    """Whether cells run on an asyncio loop running in this thread (ipykernel's): autoawait on."""
    try:
        from IPython.core.interactiveshell import _asyncio_runner
    except ImportError:
        return False
    return (asyncio._get_running_loop() is not None and shell.autoawait
            and shell.loop_runner is _asyncio_runner)


_hosted_cell = None  # (code, filename) of the %%con cell last turned into ``await __con_cell__()``


def _runners(shell):
    """The coroutine functions that hosted cells await, in the namespace (hidden from %who)."""

    async def run_cell():
        __tracebackhide__ = True
        code = _hosted_cell
        namespace = shell.user_ns
        _prepare(shell)
        namespace.pop(RESULT_NAME, None)
        try:
            await _session_here().run(_toplevel.as_function(code, namespace))
            return namespace.get(RESULT_NAME)
        except BaseException as exc:
            _shown_from_the_cell(exc, code, shell)
            raise
        finally:
            namespace.pop(RESULT_NAME, None)

    async def stop(*names):
        threads = _threads_named(names)
        if threads:
            await _session.stop(threads)

    return {CELL_RUNNER: run_cell, STOPPER: stop}


def _prepare(shell):
    namespace = shell.user_ns
    if RUNTIME_NAME not in namespace:
        prepare_namespace(namespace)
        shell.user_ns_hidden[RUNTIME_NAME] = namespace[RUNTIME_NAME]  # not listed by %who
    if CELL_RUNNER not in namespace:
        for name, runner in _runners(shell).items():
            namespace[name] = shell.user_ns_hidden[name] = runner


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
        global _hosted_cell
        words = lines[0].split() if lines else []
        if words[:1] == ["%%con"]:
            background = _background_option(words[1:])
            cell = "".join(lines[1:])
            # (execution_count is the number of the cell about to run: counted when it runs)
            filename = shell.compile.cache("".join(lines), shell.execution_count)
            try:
                code = _toplevel.compile_input("\n" + cell, filename, keep_result=True,
                                               background=background)
            except SyntaxError as error:
                raise error.with_traceback(None) from None
            if _hosted(shell):
                _prepare(shell)
                _hosted_cell = code
                return [f"await {CELL_RUNNER}()\n"]
            _checked.clear()
            _checked[cell] = code  # for the magic, which runs it
        elif words[:1] == ["%con_stop"] and not "".join(lines[1:]).strip() and _hosted(shell):
            _prepare(shell)
            return [f"await {STOPPER}(*{words[1:]!r})\n"]
        return lines

    return check


def load_ipython_extension(ipython) -> None:
    """Register ``%%con`` with ``ipython`` (called by ``%load_ext conhook``)."""
    ipython.register_magics(ConMagics)
    if _hosted(ipython):
        _prepare(ipython)
    ipython.input_transformers_cleanup.append(_check_con_cells(ipython))
