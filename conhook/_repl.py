"""``python -m conhook`` with no arguments: the con REPL (docs/spec.md §2.3).

Built like ``python -m asyncio``'s console: ``code.InteractiveConsole`` with readline
(history in ``~/.python_history``, line editing, tab completion over the console's
namespace).  Each complete input is compiled in ``"single"`` mode as top-level con code
(``x = f@()`` and ``sibling g@()`` work at the prompt) and run as one call on a fresh
scheduler; expression statements are shown as ``python`` shows them.  Ctrl-C while an
input runs interrupts it (every thread unwinds, docs/spec.md §1.6) and returns to the prompt.

Whether an input is complete is decided by ``codeop`` on the token-rewritten text, so
``f@(`` waits for more lines just as ``f(`` does.
"""
from __future__ import annotations

import builtins
import code
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


class ConConsole(code.InteractiveConsole):
    """An interactive console whose inputs are top-level con code."""

    def runsource(self, source, filename="<input>", symbol="single"):
        try:
            rewritten = pipeline.rewrite_tokens(source, filename).source
            if self.compile(rewritten, filename, symbol) is None:
                return True  # incomplete: ask for more lines
        except (SyntaxError, OverflowError, ValueError):
            pass  # compile_input reports it, in con's words
        try:
            compiled = _toplevel.compile_input(source, filename, symbol)
        except (SyntaxError, OverflowError, ValueError):
            self.showsyntaxerror(filename)
            return False
        self.runcode(compiled)
        return False

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
                    exec(compile("raise error", self.filename, "exec"),
                         {"error": exc.with_traceback(None)})
                raise
        except SystemExit:
            raise
        except BaseException:  # noqa: BLE001  (the REPL shows every failure and goes on)
            self.showtraceback()


def main() -> int:
    """Run the REPL in a fresh ``__main__`` module; return the exit status."""
    module = types.ModuleType("__main__")
    namespace = module.__dict__
    namespace["__builtins__"] = builtins
    sys.modules["__main__"] = module
    import con
    namespace["con"] = con
    console = ConConsole(namespace, filename="<stdin>")
    _setup_readline(namespace)
    from ._runtime.cactus_stack import install_dump_signal
    install_dump_signal()  # SIGUSR1: the running input's cactus stack on stderr (docs/spec.md §2.3)
    console.interact(banner=BANNER, exitmsg="exiting conhook REPL...")
    return 0


def _setup_readline(namespace: dict) -> None:
    """History, editing and completion as ``python -m asyncio`` sets them up."""
    try:
        import readline
    except ImportError:
        return
    hook = getattr(sys, "__interactivehook__", None)
    if hook is not None:
        hook()  # site.register_readline: ~/.python_history and tab completion
    try:
        import rlcompleter
    except ImportError:
        return
    readline.set_completer(rlcompleter.Completer(namespace).complete)
