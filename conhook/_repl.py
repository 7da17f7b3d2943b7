"""``python -m conhook`` with no arguments: the con REPL (docs/spec.md §2.3).

The REPL is the one ``python -m asyncio`` of the running Python would be: on 3.13+ the new
REPL (``_pyrepl``: colour, multiline editing, auto-indent, history, F1 help, F3 paste mode)
wherever asyncio's uses it, that is unless ``PYTHON_BASIC_REPL`` is set (and not ignored
with ``-E``) and if ``_pyrepl`` can drive the terminal (stdin a tty whose ``TERM`` it knows;
not ``dumb``); otherwise the basic ``code.InteractiveConsole`` with readline
(history, line editing, tab completion over the console's namespace).  No warning is printed
when the new REPL cannot be used: asyncio's falls back silently too.

Both run an input the same way.  Each complete input is compiled as top-level con code
(``x = f@()`` and ``sibling g@()`` work at the prompt) and run as one call on a fresh
scheduler; every top-level expression statement shows its value, as in ``python``.  An
input of several statements (a paste into the new REPL) is still one call, so its siblings
run beside its later statements.  Ctrl-C while an input runs interrupts it (every thread
unwinds, docs/spec.md §1.6) and returns to the prompt.

Whether an input is complete is decided by ``codeop`` on the token-rewritten text (the
console's ``compile``, which the new REPL asks too), so ``f@(`` waits for more lines just as
``f(`` does.  The new REPL names each input ``<python-input-N>`` and registers its lines, so
tracebacks show them, as ``python`` does; the basic one names every input ``<stdin>``.
"""
from __future__ import annotations

import ast
import builtins
import code
import codeop
import linecache
import os
import sys
import types

from . import _toplevel
from ._version import __version__
from ._compiler import pipeline
from ._runtime.prejoin import prepare_namespace

BANNER = (
    f"conhook {__version__} REPL, Python {sys.version} on {sys.platform}\n"
    "Non-atomic calls (x = f@()) and 'sibling f@()' work at the prompt; each input runs on a\n"
    "fresh scheduler; Ctrl-C interrupts it. The con API is imported as 'con'.\n"
    'Type "help", "copyright", "credits" or "license" for more information.'
)
EXIT_MESSAGE = "exiting conhook REPL..."


class ConCompiler(codeop.CommandCompiler):
    """``codeop``'s "is this input complete?" on the token-rewritten text."""

    def __call__(self, source, filename="<input>", symbol="single"):
        return super().__call__(pipeline.rewrite_tokens(source, filename).source, filename, symbol)


class ConConsole(code.InteractiveConsole):
    """An interactive console whose inputs are top-level con code."""

    def __init__(self, locals, filename="<stdin>"):
        super().__init__(locals, filename)
        self.compile = ConCompiler()

    def runsource(self, source, filename="<input>", symbol="single"):
        try:
            if self.compile(source, filename, symbol) is None:
                return True  # incomplete: ask for more lines
        except (SyntaxError, OverflowError, ValueError):
            pass  # run_input reports it, in con's words
        self.run_input(source, filename)
        return False

    def run_input(self, source, filename):
        """Compile ``source``, one complete input, and run it."""
        try:
            tree, rewrite = pipeline.parse_con(source, filename, "exec")
            # "single" mode over every statement: each expression statement shows its value.
            compiled = pipeline.compile_tree(ast.Interactive(tree.body), rewrite, filename,
                                             "single", toplevel=True)
        except (SyntaxError, OverflowError, ValueError):
            self.showsyntaxerror(filename)
            return
        self.runcode(compiled)

    def runcode(self, compiled):
        # Run here, not in a helper, so that showtraceback() (which drops the first
        # frame of the traceback, this one) shows the user's frames only.
        try:
            try:
                prepare_namespace(self.locals)
                from .api import bootstrap
                bootstrap(_toplevel.as_function(compiled, self.locals))
            except SystemExit:
                raise
            except BaseException as exc:  # noqa: BLE001  (re-raised at once)
                if exc.__traceback__.tb_next is None:
                    # Raised by bootstrap itself (Deadlock, KeyboardInterrupt): no frame of the
                    # input's would be shown, nor the "Traceback" header.  Raise it from a
                    # frame of the input's, as python's REPL would show it.
                    exec(_raising_code(compiled.co_filename), {"error": exc.with_traceback(None)})
                raise
        except SystemExit:
            raise
        except BaseException:  # noqa: BLE001  (the REPL shows every failure and goes on)
            self.showtraceback()


def _raising_code(filename: str) -> types.CodeType:
    """``raise error`` as line 1 of the input ``filename``, spanning the whole line.

    Spanning it, the frame shows the input's line (where its lines are registered) with no
    carets under a part of it that did not raise.
    """
    tree = ast.parse("raise error")
    width = len(linecache.getline(filename, 1).rstrip("\n")) or len("raise error")
    for node in ast.walk(tree):
        if isinstance(node, (ast.stmt, ast.expr)):
            node.lineno = node.end_lineno = 1
            node.col_offset, node.end_col_offset = 0, width
    return compile(tree, filename, "exec")


def main() -> int:
    """Run the REPL in a fresh ``__main__`` module; return the exit status."""
    module = types.ModuleType("__main__")
    namespace = module.__dict__
    namespace["__builtins__"] = builtins
    sys.modules["__main__"] = module
    import con
    namespace["con"] = con
    new_repl = _new_repl_usable()
    console = _new_repl_console(namespace) if new_repl else ConConsole(namespace)
    _setup_readline(namespace)
    from ._runtime.cactus_stack import install_dump_signal
    install_dump_signal()  # SIGUSR1: the running input's cactus stack on stderr (docs/spec.md §2.3)
    if not new_repl:
        console.interact(banner=BANNER, exitmsg=EXIT_MESSAGE)
        return 0
    from _pyrepl.simple_interact import run_multiline_interactive_console
    console.write(BANNER + "\n")
    run_multiline_interactive_console(console)
    console.write(EXIT_MESSAGE + "\n")
    return 0


def _new_repl_usable() -> bool:
    """Whether ``python -m asyncio`` would use the new REPL here (see the module docstring)."""
    if sys.version_info < (3, 13):
        return False
    if os.getenv("PYTHON_BASIC_REPL") and not sys.flags.ignore_environment:
        return False
    try:
        from _pyrepl.main import CAN_USE_PYREPL  # False without a tty or a usable TERM
    except ImportError:  # a Python built without it
        return False
    return CAN_USE_PYREPL


def _new_repl_console(namespace: dict) -> ConConsole:
    """A ``ConConsole`` for the new REPL: coloured tracebacks, each input's lines registered."""
    from _pyrepl.console import InteractiveColoredConsole

    class NewReplConsole(ConConsole, InteractiveColoredConsole):
        def runsource(self, source, filename="<input>", symbol="single"):
            # The new REPL has already asked self.compile whether the input is complete.
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            self.run_input(source, filename)
            return False

    return NewReplConsole(namespace)


def _setup_readline(namespace: dict) -> None:
    """History, editing and completion as ``python -m asyncio`` sets them up."""
    hook = getattr(sys, "__interactivehook__", None)
    if hook is not None:
        hook()  # site.register_readline: the history file (the new REPL's too), completion
    try:
        import readline
        import rlcompleter
    except ImportError:
        return
    readline.set_completer(rlcompleter.Completer(namespace).complete)
