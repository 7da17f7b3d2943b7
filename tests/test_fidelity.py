"""Fidelity: code without con syntax comes through conhook exactly as CPython has it.

* the token layer gives back every ``.py`` file of the running interpreter's standard
  library byte for byte;
* ``compile_con`` of a standard library file gives code objects equal in every field to
  ``compile``'s, also when the file does hold con syntax elsewhere (forcing every stage;
  each check takes a different third of the library);
* with the hook forced on, some of the standard library's own test modules that
  exercise syntax pass exactly as under plain CPython, test by test.
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import tokenize
import types
import warnings

import pytest

from conhook._compiler import tokens as token_layer
from conhook._compiler.pipeline import compile_con

STDLIB = sysconfig.get_paths()["stdlib"]
SHARDS = 6

# Standard library files that hold a tight ``x@(`` or ``sibling x`` outside strings and
# comments, by accident, and so would be rewritten if they opted in: none on 3.11-3.13.
EXPECTED_CON_SYNTAX: set[str] = set()

# Test data that is not valid Python on purpose.
def _is_bad_on_purpose(relpath: str) -> bool:
    return relpath.startswith("test" + os.sep) and "bad" in os.path.basename(relpath)


def _stdlib_files() -> list[str]:
    files = []
    for directory, subdirs, names in os.walk(STDLIB):
        subdirs[:] = sorted(d for d in subdirs if d not in ("site-packages", "__pycache__"))
        files.extend(os.path.join(directory, n) for n in sorted(names) if n.endswith(".py"))
    return files


FILES = _stdlib_files()


def _shard(index: int) -> list[str]:
    return FILES[index::SHARDS]


def _sample(index: int, part: int) -> list[str]:
    """Every third file of shard ``index``, starting at ``part``: the slower checks each
    take a different third, so that together they cover most of the library."""
    return _shard(index)[part::3]


def _read(path: str) -> str | None:
    """The text of ``path`` as the import system decodes it, or None if it cannot."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        return importlib.util.decode_source(data)
    except (SyntaxError, UnicodeDecodeError, LookupError):
        assert _is_bad_on_purpose(os.path.relpath(path, STDLIB)), path
        return None


def test_stdlib_is_there():
    assert len(FILES) > 1000, f"only {len(FILES)} files under {STDLIB}"


# -- the token layer ---------------------------------------------------------------------

@pytest.mark.parametrize("shard", range(SHARDS))
def test_token_layer_round_trips_stdlib(shard):
    rewritten = set()
    for path in _shard(shard):
        text = _read(path)
        if text is None:
            continue
        result = token_layer.rewrite_source(text, path)
        if result.source != text:
            rewritten.add(os.path.relpath(path, STDLIB))
    assert rewritten == {p for p in EXPECTED_CON_SYNTAX if FILES.index(os.path.join(STDLIB, p)) % SHARDS == shard}


@pytest.mark.parametrize("shard", range(SHARDS))
def test_token_layer_round_trips_stdlib_when_forced_to_tokenize(shard):
    """The same, past the cheap pre-check: every file goes through the token walk."""
    rewritten, untokenizable = set(), []
    for path in _shard(shard):
        text = _read(path)
        if text is None:
            continue
        relpath = os.path.relpath(path, STDLIB)
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
        except (tokenize.TokenError, SyntaxError):
            untokenizable.append(relpath)
            continue
        lines = io.StringIO(text).readlines()
        result = token_layer.Rewriter(tokens, lines, path).run()
        if result.source != text:
            rewritten.add(relpath)
        assert not result.columns, relpath
    assert rewritten == {p for p in EXPECTED_CON_SYNTAX if FILES.index(os.path.join(STDLIB, p)) % SHARDS == shard}
    assert all(_is_bad_on_purpose(p) for p in untokenizable), untokenizable


# -- code objects ------------------------------------------------------------------------

_CODE_FIELDS = (
    "co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals", "co_stacksize",
    "co_flags", "co_code", "co_names", "co_varnames", "co_freevars", "co_cellvars",
    "co_filename", "co_name", "co_qualname", "co_firstlineno", "co_linetable",
    "co_exceptiontable",
)


def _const_key(value):
    """A key equal for constants that are the same, telling 0.0 from -0.0 and 1 from True."""
    if isinstance(value, tuple):
        return (tuple, tuple(_const_key(v) for v in value))
    if isinstance(value, frozenset):
        return (frozenset, frozenset(_const_key(v) for v in value))
    if isinstance(value, (float, complex)):
        return (type(value), repr(value))
    return (type(value), value)


def code_difference(a: types.CodeType, b: types.CodeType, where: str = "") -> str | None:
    """Where code objects ``a`` and ``b`` differ (recursively), or None if they are equal."""
    where = f"{where}/{a.co_qualname}"
    for name in _CODE_FIELDS:
        if getattr(a, name) != getattr(b, name):
            return f"{where}: {name}"
    if len(a.co_consts) != len(b.co_consts):
        return f"{where}: number of constants"
    for index, (x, y) in enumerate(zip(a.co_consts, b.co_consts)):
        if isinstance(x, types.CodeType) and isinstance(y, types.CodeType):
            difference = code_difference(x, y, where)
            if difference:
                return difference
        elif _const_key(x) != _const_key(y):
            return f"{where}: constant {index}: {x!r} != {y!r}"
    return None


def _compile_both(path: str, text: str, suffix: str = ""):
    """``compile`` of ``text`` and ``compile_con`` of ``text + suffix``; SyntaxErrors as results."""
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for compiler, source in ((lambda s: compile(s, path, "exec", dont_inherit=True), text),
                                 (lambda s: compile_con(s, path), text + suffix)):
            try:
                results.append(compiler(source))
            except (SyntaxError, ValueError) as error:
                results.append(error)
    return results


@pytest.mark.parametrize("shard", range(SHARDS))
def test_compile_con_equals_compile_on_stdlib(shard):
    compared = 0
    for path in _sample(shard, 1):
        text = _read(path)
        if text is None:
            continue
        plain, con = _compile_both(path, text)
        if isinstance(plain, BaseException):
            assert type(con) is type(plain), path
            assert (con.msg, con.lineno, con.offset) == (plain.msg, plain.lineno, plain.offset), path
            continue
        assert code_difference(plain, con) is None, code_difference(plain, con)
        compared += 1
    assert compared > len(_sample(shard, 1)) * 0.9


PROBE = "\n\ndef _fidelity_probe_():\n    _probe_@()\n"


@pytest.mark.parametrize("shard", range(SHARDS))
def test_compile_con_equals_compile_with_con_syntax_beside(shard):
    """A non-atomic function appended to the file forces every stage of the pipeline
    (token edits, the AST step, the bytecode pass); everything else must not change."""
    compared, unreachable = 0, []
    for path in _sample(shard, 0):
        text = _read(path)
        if text is None:
            continue
        plain, con = _compile_both(path, text, PROBE)
        if isinstance(plain, BaseException):
            continue
        assert isinstance(con, types.CodeType), f"{path}: {con!r}"
        con_functions = [c for c in con.co_consts if isinstance(c, types.CodeType)]
        # The probe is the last function, but on 3.14+ a module's __annotate__ may follow it.
        probes = [i for i, c in enumerate(con_functions) if c.co_name == "_fidelity_probe_"]
        if probes:
            probe = con_functions.pop(probes[-1])
            assert probe.co_flags & 0x80, path  # CO_COROUTINE
        else:  # the module ends in an endless loop, and the compiler dropped the probe
            unreachable.append(path)
        plain_functions = [c for c in plain.co_consts if isinstance(c, types.CodeType)]
        assert len(con_functions) == len(plain_functions), path
        for a, b in zip(plain_functions, con_functions):
            assert code_difference(a, b, path) is None, code_difference(a, b, path)
        compared += 1
    assert compared > len(_sample(shard, 0)) * 0.9
    assert len(unreachable) < 10, unreachable


# -- the standard library's own tests, with the hook forced on ---------------------------------

STDLIB_TESTS = [
    "test.test_grammar", "test.test_scope", "test.test_with", "test.test_exceptions",
    "test.test_patma", "test.test_coroutines", "test.test_named_expressions", "test.test_super",
    "test.test_fstring", "test.test_decorators", "test.test_generators", "test.test_listcomps",
    "test.test_unpack_ex", "test.test_keywordonlyarg", "test.test_positional_only_arg",
    "test.test_exception_group", "test.test_except_star", "test.test_opcodes",
    "test.test_contextlib", "test.test_dataclasses",
]

# Runs the given test modules with unittest and prints each test's outcome as JSON.
# "plain": ordinary imports; "hook": through conhook's import hook; "forced": through the
# hook with a non-atomic function appended to each module, so that every stage runs.
RUNNER = textwrap.dedent("""
    import json, sys, unittest
    sys.dont_write_bytecode = True   # never write caches into the standard library
    mode, names = sys.argv[1], sys.argv[2:]
    if mode != "plain":
        import conhook
        from conhook._compiler import pipeline
        if mode == "forced":
            original = pipeline.compile_con
            def forced(source, filename, *args, **kwargs):
                source = pipeline.decode_source(source) + %(probe)r
                return original(source, filename, *args, **kwargs)
            pipeline.compile_con = forced
        conhook.install(packages=names)

    outcomes = {}
    class Result(unittest.TestResult):
        def record(self, test, outcome, err=None):
            outcomes[test.id()] = outcome
            if err is not None and outcome in ("fail", "error"):
                sys.stderr.write(self._exc_info_to_string(err, test))
        def addSuccess(self, test): self.record(test, "ok")
        def addFailure(self, test, err): self.record(test, "fail", err)
        def addError(self, test, err): self.record(test, "error", err)
        def addSkip(self, test, reason): self.record(test, "skip")
        def addExpectedFailure(self, test, err): self.record(test, "xfail")
        def addUnexpectedSuccess(self, test): self.record(test, "xpass")
        def addSubTest(self, test, subtest, err):
            if err is not None:
                self.record(subtest, "fail", err)

    loaders, probes = {}, {}
    for name in names:
        suite = unittest.defaultTestLoader.loadTestsFromName(name)
        module = sys.modules[name]
        loaders[name] = type(module.__spec__.loader).__name__
        probe = getattr(module, "_fidelity_probe_", None)
        probes[name] = probe is not None and probe.__code__.co_flags & 0x80 != 0
        suite.run(Result())
    json.dump({"loaders": loaders, "probes": probes, "outcomes": outcomes}, sys.stdout)
""") % {"probe": PROBE}


def _run_stdlib_tests(mode: str) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-c", RUNNER, mode, *STDLIB_TESTS], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def plain_outcomes():
    try:
        import test.test_grammar  # noqa: F401
    except ImportError:
        pytest.skip(f"this Python ({sys.executable}) has no 'test' package")
    plain = _run_stdlib_tests("plain")
    assert set(plain["loaders"].values()) == {"SourceFileLoader"}
    return plain["outcomes"]


@pytest.mark.parametrize("mode", ["hook", "forced"])
def test_stdlib_tests_pass_as_under_cpython(plain_outcomes, mode):
    con = _run_stdlib_tests(mode)
    assert con["loaders"] == dict.fromkeys(STDLIB_TESTS, "ConLoader")
    assert con["probes"] == dict.fromkeys(STDLIB_TESTS, mode == "forced")
    assert len(plain_outcomes) > 1000
    assert con["outcomes"] == plain_outcomes
