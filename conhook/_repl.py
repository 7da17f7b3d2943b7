"""``python -m conhook`` with no arguments: the con REPL, hosted (docs/spec.md §2.3).

The REPL is the one ``python -m asyncio`` of the running Python would be: on 3.13+ the new
REPL (``_pyrepl``: colour, multiline editing, auto-indent, history, F1 help, F3 paste mode)
wherever asyncio's uses it, that is unless ``PYTHON_BASIC_REPL`` is set (and not ignored
with ``-E``) and if ``_pyrepl`` can drive the terminal (stdin a tty whose ``TERM`` it knows;
not ``dumb``); otherwise the basic ``code.InteractiveConsole`` with readline
(history, line editing, tab completion over the console's namespace).  No warning is printed
when the new REPL cannot be used: asyncio's falls back silently too.

Both run an input the same way, much as ``python -m asyncio`` runs its inputs: an asyncio loop
runs for the whole session and hosts one conhook kernel (a session, ``_runtime.session``); it runs
in an OS thread of its own and the console stays in the main thread (asyncio's REPL does the
reverse), where SIGINT's handler runs.  Each complete input is compiled as top-level con code
and run as one thread of that kernel, the console waiting for it; every top-level expression
statement shows its value, as in ``python``.  A top-level ``sibling`` starts
a background thread of the session, which runs on while the console reads the next lines (as
``asyncio.create_task`` at asyncio's prompt).  Ctrl-C while an input runs interrupts it (its
threads unwind, docs/spec.md §1.6; a thread busy in atomic code gets ``KeyboardInterrupt`` in the
loop's OS thread, only where it runs an input's own code: ``HostedSession.run``) and returns to
the prompt; background threads run on.  At exit they are interrupted and waited for.

Whether an input is complete is decided by ``codeop`` on the token-rewritten text (the
console's ``compile``, which the new REPL asks too), so ``f@(`` waits for more lines just as
``f(`` does.  The new REPL names each input ``<python-input-N>`` and registers its lines, so
tracebacks show them, as ``python`` does; the basic one names every input ``<stdin>``.
"""
from __future__ import annotations

import ast
import asyncio
import builtins
import code
import codeop
import linecache
import os
import select
import signal
import socket
import sys
import threading
import types

from . import _toplevel
from ._version import __version__
from ._compiler import pipeline
from ._runtime.prejoin import prepare_namespace

BANNER = (
    f"conhook {__version__} REPL, Python {sys.version} on {sys.platform}\n"
    "Non-atomic calls (x = f@()) work at the prompt; 'sibling f@()' there starts a background\n"
    "thread that runs on between inputs; Ctrl-C interrupts the running input. The con API is\n"
    "imported as 'con'.\n"
    'Type "help", "copyright", "credits" or "license" for more information.'
)
EXIT_MESSAGE = "exiting conhook REPL..."


class ConCompiler(codeop.CommandCompiler):
    """``codeop``'s "is this input complete?" on the token-rewritten text."""

    def __call__(self, source, filename="<input>", symbol="single"):
        return super().__call__(pipeline.rewrite_tokens(source, filename).source, filename, symbol)


class HostedSession:
    """The REPL's session (``_runtime.session``) on an asyncio loop that runs in an OS thread of
    its own, so that background threads run on while the console waits for the next line."""

    def __init__(self):
        self.loop = loop = asyncio.new_event_loop()
        # What wakes the console while it waits for an input: a signal (the wake-up fd) or the
        # input's end.
        self.wakeup = socket.socketpair()
        for end in self.wakeup:
            end.setblocking(False)
        self.thread = threading.Thread(target=self._serve, name="conhook session", daemon=True)
        self.thread.start()
        self.session = asyncio.run_coroutine_threadsafe(self._start(), loop).result()

    def _serve(self):
        if hasattr(signal, "pthread_sigmask"):
            # The OS delivers a process-wide SIGINT to any thread that does not block it; Python
            # runs its handler in the main thread only, and a main thread blocked in a wait is
            # woken only if the signal is delivered to it.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGUSR1})
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _start(self):
        from ._runtime.session import Session
        return Session(asyncio.get_running_loop())

    def run(self, fn):
        """Run ``fn`` as an input; Ctrl-C while it runs interrupts it (then it raises KeyboardInterrupt).

        While the input runs, SIGINT's handler in this OS thread raises nothing here (a
        KeyboardInterrupt between handing the input over and waiting for it would leave it
        running unseen): it tells the session, which interrupts the input where that is safe.
        The wait is a ``select`` on the signal wake-up fd, which the input's end writes to as
        well: a signal that comes just before the wait blocks still ends it, and the handler
        runs (a plain lock wait would sleep on with the handler pending).
        """
        from ._runtime.session import CtrlC
        request, ident = CtrlC(), self.thread.ident
        reader, writer = self.wakeup
        previous = signal.signal(signal.SIGINT, lambda signum, frame: self.session.interrupt_from(ident, request))
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        try:
            future = asyncio.run_coroutine_threadsafe(self.session.outcome(fn, request), self.loop)
            future.add_done_callback(lambda future: _poke(writer))
            while not future.done():
                select.select([reader], [], [])  # (the handler runs when it returns, or before)
                _drain(reader)
            value, exc = future.result()
        finally:
            signal.set_wakeup_fd(previous_fd)
            signal.signal(signal.SIGINT, previous)
        if exc is not None:
            raise exc
        return value

    def dump(self, signum, frame):
        """SIGUSR1: the session's cactus stack on stderr (drawn from the main OS thread)."""
        from ._runtime.cactus_stack import dump_cactus_stack
        dump_cactus_stack(self.session.kernel, sys._current_frames().get(self.thread.ident))

    def close(self):
        """Stop the background threads (their ``finally`` blocks run), then the loop."""
        try:
            asyncio.run_coroutine_threadsafe(self.session.close(), self.loop).result()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            self.loop.close()
            for end in self.wakeup:
                end.close()


def _poke(writer: socket.socket) -> None:
    """Wake the console waiting on `writer`'s pair (from the loop's OS thread)."""
    try:
        writer.send(b"\0")
    except OSError:
        pass  # full: the console wakes all the same


def _drain(reader: socket.socket) -> None:
    """Read what woke the console (signal numbers, pokes) until nothing is left."""
    try:
        while reader.recv(4096):
            pass
    except OSError:  # BlockingIOError: drained
        pass


class ConConsole(code.InteractiveConsole):
    """An interactive console whose inputs are top-level con code, run by a hosted session."""

    def __init__(self, locals, filename="<stdin>", session=None):
        super().__init__(locals, filename)
        self.compile = ConCompiler()
        self.session = session

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
            # Top-level siblings are the session's background threads (asyncio's create_task).
            compiled = pipeline.compile_tree(ast.Interactive(tree.body), rewrite, filename,
                                             "single", toplevel=True, opener="background")
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
                self.session.run(_toplevel.as_function(compiled, self.locals))
            except SystemExit:
                raise
            except BaseException as exc:  # noqa: BLE001  (re-raised at once)
                tb = exc.__traceback__
                while tb is not None and tb.tb_frame.f_code is not compiled:
                    tb = tb.tb_next  # (the session's frames and the wait for it, in this OS thread)
                if tb is None:
                    # Raised by the session itself (Deadlock, KeyboardInterrupt): no frame of the
                    # input's would be shown, nor the "Traceback" header.  Raise it from a
                    # frame of the input's, as python's REPL would show it.
                    exec(_raising_code(compiled.co_filename), {"error": exc.with_traceback(None)})
                raise exc.with_traceback(tb)
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
    session = HostedSession()
    try:
        console = _new_repl_console(namespace, session) if new_repl else ConConsole(namespace, session=session)
        _setup_readline(namespace)
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, session.dump)  # the session's cactus stack (docs/spec.md §2.3)
        if not new_repl:
            console.interact(banner=BANNER, exitmsg=EXIT_MESSAGE)
            return 0
        from _pyrepl.simple_interact import run_multiline_interactive_console
        console.write(BANNER + "\n")
        run_multiline_interactive_console(console)
        console.write(EXIT_MESSAGE + "\n")
        return 0
    finally:
        session.close()


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


def _new_repl_console(namespace: dict, session: HostedSession) -> ConConsole:
    """A ``ConConsole`` for the new REPL: coloured tracebacks, each input's lines registered."""
    from _pyrepl.console import InteractiveColoredConsole

    class NewReplConsole(ConConsole, InteractiveColoredConsole):
        def runsource(self, source, filename="<input>", symbol="single"):
            # The new REPL has already asked self.compile whether the input is complete.
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            self.run_input(source, filename)
            return False

    return NewReplConsole(namespace, session=session)


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
