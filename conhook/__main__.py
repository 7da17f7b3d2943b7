"""``python -m conhook``: run con programs the way ``python`` runs Python ones.

    python -m conhook script.py [args...]
    python -m conhook -m module [args...]
    python -m conhook -c code [args...]
    python -m conhook --show FILE      the token-rewritten source
    python -m conhook --dis FILE       the rewritten bytecode
    python -m conhook --workers N ...  N copies of the program, sharing listening addresses
    python -m conhook --loop asyncio ...  its bootstrap hosted on an asyncio (or uvloop) loop
    python -m conhook                  the REPL (top-level x = f@() works)
    python -m conhook COMMAND ...      a toolchain command on con files (``SUBCOMMANDS``)

``sys.argv``, ``__main__`` and ``sys.path[0]`` are set as CPython sets them.  The
program itself is always rewritten, whether or not it imports ``con``.

SIGTERM (``kill``, ``docker stop``, systemd, the ``--workers`` supervisor) stops a program
whose scheduler runs as Ctrl-C does: every thread unwinds, its ``finally`` blocks run and its
sockets close, then ``bootstrap`` raises ``KeyboardInterrupt``; a second SIGTERM (or Ctrl-C)
stops it at once.  If the program lets that ``KeyboardInterrupt`` out, the process ends by
SIGTERM, so the parent sees how it ended.  Outside a scheduler SIGTERM ends the process at
once, as it does any Python program; a program that installed its own SIGTERM handler keeps it.
"""
from __future__ import annotations

import builtins
import dis
import importlib.machinery
import importlib.util
import itertools
import linecache
import os
import signal
import sys
import types

import conhook
from conhook._compiler.versions import MODULES_HAVE_CACHED  # (as cheap as sys)

# The toolchain's commands, each a module of ``conhook._toolchain`` with ``main(argv) -> int``.
# A command's name comes before any file name: run a script called ``check`` as ``./check``.
SUBCOMMANDS = {}

# The compiler and the runtime are imported where they are used: ``--workers`` needs neither,
# and its supervisor takes SIGTERM over the sooner for it (``_supervisor``).

USAGE = """\
usage: python -m conhook (script.py | -m module | -c code) [args...]
       python -m conhook --workers N (script.py | -m module | -c code) [args...]
       python -m conhook --loop (asyncio | uvloop) (script.py | -m module | -c code) [args...]
       python -m conhook (--show | --dis) FILE    (the rewritten source, or its bytecode)
       python -m conhook                          (no arguments: the REPL)
       python -m conhook COMMAND [args...]        (a toolchain command on con files)
"""


def main(argv: list[str]) -> int:
    if not argv:
        from conhook import _repl
        return _repl.main()
    if argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    option, rest = argv[0], argv[1:]
    if option == "--loop" or option.startswith("--loop="):
        return hosted_on(option, rest)
    if option in SUBCOMMANDS:
        import importlib
        return importlib.import_module(SUBCOMMANDS[option]).main(rest)
    if option == "--workers" or option.startswith("--workers="):
        return workers(option, rest)
    if option in ("--show", "--dis"):
        if len(rest) != 1:
            sys.stderr.write(USAGE)
            return 2
        return show(rest[0], disassemble=option == "--dis")
    if option == "-c":
        if not rest:
            sys.stderr.write("Argument expected for the -c option\n" + USAGE)
            return 2
        if sys.version_info >= (3, 13):  # like python -c, show the code's lines in tracebacks
            linecache.cache["<string>"] = (len(rest[0]), None,
                                           [line + "\n" for line in rest[0].splitlines()], "<string>")
        return run_code(rest[0], "<string>", ["-c", *rest[1:]], path0="")
    if option == "-m":
        if not rest:
            sys.stderr.write("Argument expected for the -m option\n" + USAGE)
            return 2
        return run_module(rest[0], rest[1:])
    if option.startswith("-"):
        sys.stderr.write(f"unknown option {option!r}\n" + USAGE)
        return 2
    return run_script(option, rest)


def hosted_on(option: str, rest: list[str]) -> int:
    """``--loop asyncio|uvloop ...``: the program's ``bootstrap`` hosts its scheduler on that loop."""
    loop, rest = (rest[0], rest[1:]) if option == "--loop" and rest else (option.partition("=")[2], rest)
    from conhook._runtime import bootstrap, hosted
    if loop not in hosted.LOOPS:
        sys.stderr.write(f"--loop needs one of {', '.join(hosted.LOOPS)}, not {loop!r}\n" + USAGE)
        return 2
    if not rest or rest[0].startswith("--"):
        sys.stderr.write("--loop needs a program to run\n" + USAGE)
        return 2
    bootstrap.default_loop = loop
    return main(rest)


def workers(option: str, rest: list[str]) -> int:
    """``--workers N ...``: run N copies of the program under a supervisor (``_supervisor``)."""
    if option == "--workers":
        count, rest = (rest[0], rest[1:]) if rest else ("", [])
    else:
        count = option.partition("=")[2]
    if not count.isdigit() or int(count) < 1:
        sys.stderr.write(f"--workers needs a number of workers >= 1, not {count!r}\n" + USAGE)
        return 2
    if not rest or rest[0] in ("--show", "--dis") or rest[0].startswith("--workers"):
        sys.stderr.write("--workers needs a program to run\n" + USAGE)
        return 2
    from conhook._supervisor import supervise
    return supervise(int(count), rest)


def show(filename: str, disassemble: bool) -> int:
    from conhook._compiler import pipeline
    try:
        with open(filename, "rb") as file:
            source = pipeline.decode_source(file.read(), filename)
    except OSError as error:
        sys.stderr.write(f"python -m conhook: can't open file {filename!r}: "
                         f"[Errno {error.errno}] {error.strerror}\n")
        return 2
    try:
        if disassemble:
            dis.dis(pipeline.compile_con(source, filename))
        else:
            sys.stdout.write(pipeline.rewrite_tokens(source, filename).source)
        sys.stdout.flush()
    except SyntaxError as error:
        error.__traceback__ = None
        return report(error)
    except BrokenPipeError:
        # The reader stopped (`| head`): end quietly, as the Python docs advise (signal module,
        # "Note on SIGPIPE"); stdout goes to devnull so that the flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def run_script(path: str, args: list[str]) -> int:
    # CPython makes the script's name absolute (joined to the working directory, not
    # normalized, symlinks kept) for __file__, tracebacks and its error message.
    filename = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
    try:
        with open(filename, "rb") as file:
            source = file.read()
    except OSError as error:
        sys.stderr.write(f"{sys.orig_argv[0]}: can't open file '{filename}': "
                         f"[Errno {error.errno}] {error.strerror}\n")
        return 2
    path0 = os.path.dirname(os.path.realpath(filename))
    loader = importlib.machinery.SourceFileLoader("__main__", filename)
    return run_code(source, filename, [path, *args], path0=path0, file=filename, loader=loader)


class _NoModule(Exception):
    """``-m`` cannot run the module; the message is CPython's (``runpy``)."""


def find_main_spec(name: str):
    """The spec ``python -m name`` runs, as ``runpy._get_module_details`` finds it."""
    if name.startswith("."):
        raise _NoModule("Relative module names not supported")
    parent = name.rpartition(".")[0]
    if parent:
        try:
            __import__(parent)
        except ImportError as error:
            if error.name is None or (error.name != parent and not parent.startswith(error.name + ".")):
                raise
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        message = f"Error while finding module specification for {name!r} ({type(error).__name__}: {error})"
        if name.endswith(".py"):
            message += f". Try using '{name[:-3]}' instead of '{name}' as the module name."
        raise _NoModule(message) from error
    if spec is None:
        raise _NoModule(f"No module named {name}")
    if spec.submodule_search_locations is not None:
        if name == "__main__" or name.endswith(".__main__"):
            raise _NoModule("Cannot use package as __main__ module")
        try:
            return find_main_spec(name + ".__main__")
        except _NoModule as error:
            if name not in sys.modules:
                raise
            raise _NoModule(f"{error}; {name!r} is a package and cannot be directly executed") from None
    if spec.loader is None:
        raise _NoModule(f"{name!r} is a namespace package and cannot be executed")
    if spec.origin is None or not spec.origin.endswith(".py"):
        raise _NoModule(f"No code object available for {name}")
    return spec


def run_module(name: str, args: list[str]) -> int:
    try:
        spec = find_main_spec(name)
    except _NoModule as error:
        sys.stderr.write(f"{sys.executable}: {error}\n")  # runpy's wording
        return 1
    with open(spec.origin, "rb") as file:
        source = file.read()
    return run_code(source, spec.origin, [spec.origin, *args], path0=os.getcwd(),
                    file=spec.origin, loader=spec.loader, spec=spec)


def run_code(source, filename, argv, *, path0, file=None, loader=None, spec=None) -> int:
    sys.argv[:] = argv
    if not sys.flags.safe_path:  # -P / PYTHONSAFEPATH: CPython puts no directory first
        sys.path[0] = path0
    main_module = types.ModuleType("__main__")
    namespace = main_module.__dict__
    namespace.update(__file__=file, __loader__=loader, __spec__=spec, __builtins__=builtins)
    if file is None:
        del namespace["__file__"]
    else:  # as runpy (for -m) and the interpreter (for a script) set them
        if MODULES_HAVE_CACHED:
            namespace["__cached__"] = spec.cached if spec is not None else None
        if spec is not None:
            namespace["__package__"] = spec.parent
    sys.modules["__main__"] = main_module
    from conhook._compiler import pipeline
    from conhook._runtime.prejoin import prepare_namespace
    try:
        code = pipeline.compile_con(source, filename)
    except SyntaxError as error:
        error.__traceback__ = None
        return report(error)
    from conhook._runtime.cactus_stack import install_dump_signal
    install_dump_signal()  # SIGUSR1 prints the cactus stack (docs/spec.md §2.3)
    _stop_on_sigterm_as_on_ctrl_c()
    try:
        prepare_namespace(namespace)
        exec(code, namespace)
    except SystemExit:
        raise
    except BaseException as error:  # noqa: BLE001 - reported like the interpreter does
        return report(error)
    return 0


_terminated = False  # SIGTERM asked the program to stop


def _stop_on_sigterm_as_on_ctrl_c():
    """Handle SIGTERM as Ctrl-C while a scheduler runs (see the module's docstring)."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # ignored where we were started (nohup and the like): keep it so

    from conhook._runtime.bootstrap import on_interrupt_signal

    class on_sigterm(on_interrupt_signal):  # (a class: it leaves no frame in a traceback)
        __slots__ = ()

        def __new__(cls, signum, frame):
            global _terminated
            from conhook._runtime import kernel
            if kernel.state.kernel is None:  # no scheduler runs here: end at once, as before
                _die_of(signal.SIGTERM)
            _terminated = True
            return super().__new__(cls, signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def _die_of(signum):
    """End the process by `signum`'s default action, so that the parent sees how it ended."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(conhook.__file__)), "")
_IMPORTLIB = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")


def _without_machinery(tb):
    """``tb`` without the runner's frames and without the import hook's frames.

    The runner's frames lead the traceback.  The hook's frames (a ``SyntaxError`` from
    the pipeline while a module is imported) sit in a run of importlib frames that
    CPython would have removed but for them: such a run goes as a whole.  (A
    ``KeyboardInterrupt`` that conhook's SIGINT or SIGTERM handler raised has no frame of the
    handler: ``bootstrap.on_interrupt_signal`` raises it after its frames have returned.)
    """
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    kept = []
    runs = itertools.groupby(entries, key=lambda entry: _frame_kind(entry) is not None)
    for index, (machinery, run) in enumerate(runs):
        run = list(run)
        kinds = {_frame_kind(entry) for entry in run}
        if machinery and (kinds == {"conhook"} if index == 0 else kinds == {"conhook", "importlib"}):
            continue
        kept.extend(run)
    for entry, following in zip(kept, kept[1:] + [None]):
        entry.tb_next = following
    return kept[0] if kept else None


def _frame_kind(entry) -> str | None:
    filename = entry.tb_frame.f_code.co_filename
    if filename.startswith(_PACKAGE_DIR):
        return "conhook"
    return "importlib" if filename in _IMPORTLIB else None


def report(error: BaseException) -> int:
    """Print ``error`` as ``python`` would, without the runner's own frames (and a slip said
    in conhook's words: ``slips``)."""
    from conhook._runtime.slips import explain
    error = explain(error)
    tb = _without_machinery(error.__traceback__)
    error.__traceback__ = tb
    sys.excepthook(type(error), error, tb)
    if isinstance(error, KeyboardInterrupt):
        # Like CPython: die of the signal, so that the parent sees how we ended.
        _die_of(signal.SIGTERM if _terminated else signal.SIGINT)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
