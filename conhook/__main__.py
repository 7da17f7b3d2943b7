"""``python -m conhook``: run con programs the way ``python`` runs Python ones.

    python -m conhook script.py [args...]
    python -m conhook -m module [args...]
    python -m conhook -c code [args...]
    python -m conhook app.pyz | directory [args...]   (a zipapp, or a directory, with __main__.py)
    python -m conhook - [args...]      the program on stdin (so is a bare ``python -m conhook``
                                       whose stdin is not a terminal, as with ``python``)
    python -m conhook -i               the REPL, even when stdin is not a terminal
    python -m conhook --version
    python -m conhook --show FILE      the token-rewritten source
    python -m conhook --dis FILE       the rewritten bytecode
    python -m conhook --workers N ...  N copies of the program, sharing listening addresses
    python -m conhook --loop asyncio ...  its bootstrap hosted on an asyncio (or uvloop) loop
    python -m conhook                  the REPL (top-level x = f@() works)
    python -m conhook COMMAND ...      a toolchain command on con files (``SUBCOMMANDS``)

``sys.argv``, ``__main__`` and ``sys.path[0]`` are set as CPython sets them.  The
program itself is always rewritten, whether or not it imports ``con``.  A script's or a
module's rewritten code is cached as an imported module's is (``_import_hook.compile_cached``):
a warm start imports nothing of the compiler.  ``multiprocessing`` children (spawn, forkserver)
re-run the main script through conhook too (``_multiprocessing``).

SIGTERM (``kill``, ``docker stop``, systemd, the ``--workers`` supervisor) stops a program
whose scheduler runs as Ctrl-C does: every thread unwinds, its ``finally`` blocks run and its
sockets close, then ``bootstrap`` raises ``KeyboardInterrupt``; a second SIGTERM (or Ctrl-C)
stops it at once.  If the program lets that ``KeyboardInterrupt`` out, the process ends by
SIGTERM, so the parent sees how it ended.  Outside a scheduler SIGTERM ends the process at
once, as it does any Python program; a program that installed its own SIGTERM handler keeps it.
"""
from __future__ import annotations

import builtins
import importlib.machinery
import importlib.util
import itertools
import os
import signal
import sys
import types

import conhook
from conhook._compiler.versions import MODULES_HAVE_CACHED  # (as cheap as sys)

# The toolchain's commands, each a module of ``conhook._toolchain`` with ``main(argv) -> int``.
# A command's name comes before any file name: run a script called ``check`` as ``./check``.
SUBCOMMANDS = {
    "check": "conhook._toolchain.check",
    "format": "conhook._toolchain.format",
    "lint": "conhook._toolchain.lint",
    "typecheck": "conhook._toolchain.typecheck",
}

# The compiler and the runtime are imported where they are used: ``--workers`` needs neither,
# and its supervisor takes SIGTERM over the sooner for it (``_supervisor``).

USAGE = """\
usage: python -m conhook (script.py | -m module | -c code | app.pyz | directory | -) [args...]
       python -m conhook --workers N (script.py | -m module | -c code) [args...]
       python -m conhook --loop (asyncio | uvloop) (script.py | -m module | -c code) [args...]
       python -m conhook (--show | --dis) FILE    (the rewritten source, or its bytecode)
       python -m conhook                          (no arguments: the REPL, or stdin's program)
       python -m conhook -i                       (the REPL, whatever stdin is)
       python -m conhook --version
       python -m conhook COMMAND [args...]        (a toolchain command on con files)
"""


def main(argv: list[str]) -> int:
    if not argv and not _stdin_is_a_program():
        argv = ["-i"]
    if not argv or argv[0] == "-":
        return run_stdin(argv or [""])
    if argv[0] == "-i":
        return interactive(argv[1:])
    if argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    if argv[0] in ("-V", "--version"):
        sys.stdout.write(f"conhook {conhook.__version__} (Python {sys.version.split()[0]})\n")
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
            import linecache
            linecache.cache["<string>"] = (len(rest[0]), None,
                                           [line + "\n" for line in rest[0].splitlines()], "<string>")
        return run_code(_compiling(rest[0], "<string>"), ["-c", *rest[1:]], path0="")
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


def interactive(rest: list[str]) -> int:
    """``-i``: the REPL, reading stdin whatever it is, as ``python -i`` does."""
    if rest:
        sys.stderr.write("python -m conhook: -i takes no program (running a program and then the REPL "
                         "is not supported): give the program alone, or -i alone\n" + USAGE)
        return 2
    from conhook import _repl
    return _repl.main()


def _stdin_is_a_program() -> bool:
    """Whether a bare ``python -m conhook`` runs stdin as a program: stdin is not a terminal,
    as for ``python`` (which runs the REPL only on a terminal, or when told ``-i``)."""
    try:
        return sys.stdin is not None and not os.isatty(sys.stdin.fileno())
    except (OSError, ValueError):
        return False


def run_stdin(argv: list[str]) -> int:
    """``-`` or a bare run with a pipe: the program is stdin's text, as ``python -`` runs it."""
    source = sys.stdin.buffer.read()
    return run_code(_compiling(source, "<stdin>"), argv, path0="", file="<stdin>",
                    loader=importlib.machinery.BuiltinImporter)


def show(filename: str, disassemble: bool) -> int:
    import dis

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
    if os.path.isdir(filename) or _zip_importer(filename) is not None:
        return run_archive(path, filename, args)
    try:
        # Opened here, for the error message; the code comes from the cache when it is fresh.
        with open(filename, "rb"):
            pass
    except OSError as error:
        sys.stderr.write(f"{sys.orig_argv[0]}: can't open file '{filename}': "
                         f"[Errno {error.errno}] {error.strerror}\n")
        return 2
    path0 = os.path.dirname(os.path.realpath(filename))
    loader = importlib.machinery.SourceFileLoader("__main__", filename)
    _multiprocessing_children_run_con_code()
    return run_code(_cached(filename), [path, *args], path0=path0, file=filename, loader=loader)


def _zip_importer(filename: str):
    """A ``zipimporter`` of ``filename`` if it is a zip file (a zipapp), else None: CPython's
    start-up asks ``zipimport`` too."""
    import zipimport
    try:
        return zipimport.zipimporter(filename)
    except zipimport.ZipImportError:
        return None


def run_archive(path: str, filename: str, args: list[str]) -> int:
    """A zipapp or a directory: its ``__main__`` module, as ``python app.pyz`` runs it
    (``runpy._run_module_as_main``: the archive first on ``sys.path``, even under ``-P``)."""
    if sys.flags.safe_path:
        sys.path.insert(0, filename)
    else:
        sys.path[0] = filename
    spec = _main_spec(filename)
    if spec is None or spec.loader is None or spec.origin is None:
        sys.stderr.write(f"{sys.executable}: can't find '__main__' module in {filename!r}\n")
        return 1
    if os.path.isfile(spec.origin):
        load = _cached(spec.origin)
    else:  # inside a zip file: compiled on every run, as CPython does (no cache is written there)
        load = _compiling(spec.loader.get_data(spec.origin), spec.origin)
    _multiprocessing_children_run_con_code()
    return run_code(load, [path, *args], path0=None, file=spec.origin, loader=spec.loader, spec=spec)


def _main_spec(filename: str):
    """The spec of the archive's ``__main__`` (the archive first on ``sys.path``), or None."""
    importer = _zip_importer(filename)
    if importer is not None:
        # zipimport's find_spec compiles the module (as plain Python): its spec is made here.
        import zipimport
        try:
            importer.get_source("__main__")
        except zipimport.ZipImportError:
            return None
        return importlib.util.spec_from_file_location("__main__", os.path.join(filename, "__main__.py"),
                                                      loader=importer)
    runner_module = sys.modules.pop("__main__")  # (else find_spec answers with the runner's spec)
    try:
        return importlib.util.find_spec("__main__")
    except ImportError:
        return None
    finally:
        sys.modules["__main__"] = runner_module


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
    if os.path.isfile(spec.origin):
        load = _cached(spec.origin)
    else:  # a module in a zip file on sys.path
        load = _compiling(spec.loader.get_data(spec.origin), spec.origin)
    _multiprocessing_children_run_con_code()
    return run_code(load, [spec.origin, *args], path0=os.getcwd(),
                    file=spec.origin, loader=spec.loader, spec=spec)


def _cached(filename: str):
    """A loader of the program at ``filename``: its cached code, or compiled and cached."""
    def load():
        from conhook._import_hook import compile_cached
        return compile_cached(filename)
    return load


def _compiling(source, filename: str):
    """A loader of ``source``'s code, compiled (it has no file to cache it beside)."""
    def load():
        from conhook._compiler import pipeline
        return pipeline.compile_con(source, filename)
    return load


def _multiprocessing_children_run_con_code():
    from conhook._multiprocessing import children_run_con_code
    children_run_con_code()


def run_code(load, argv, *, path0, file=None, loader=None, spec=None) -> int:
    """Run the code that ``load()`` returns as ``__main__``; ``path0`` (None: left as it is)
    becomes ``sys.path[0]``."""
    sys.argv[:] = argv
    if path0 is not None and not sys.flags.safe_path:  # -P / PYTHONSAFEPATH: no directory first
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
    from conhook._runtime.prejoin import prepare_namespace
    try:
        code = load()
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


def console() -> int:
    """The ``conhook`` console script (``[project.scripts]``): ``python -m conhook``'s twin."""
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
