"""The pytest plugin (entry point ``conhook``): con test modules, non-atomic tests and fixtures.

Test modules that opt in (docs/spec.md §2.1) are compiled by conhook *and* keep pytest's assertion
rewriting.  Both are import hooks and both want the module, so one loader does the work:

    source -> token rewrite -> ast.parse -> pytest's assertion rewriter -> conhook's AST step
           -> compile -> bytecode layer

The order on ``sys.meta_path`` is made deterministic: ``TestModuleFinder`` is inserted
directly in front of the ``AssertionRewritingHook`` of the running config (before the initial
conftests are imported) and asks that hook whether pytest would rewrite the module.  If so
and the module opts in, the finder hands back pytest's spec with ``TestModuleLoader``;
otherwise pytest's own answer, unchanged.  Modules pytest would not rewrite (non-test modules,
or every module under ``--assert=plain``) reach conhook's ordinary import hook as usual.

A non-atomic call in an assertion is explained as written: ``assert f@() == 3`` fails with
``assert 2 == 3`` / ``+  where 2 = f@()``.

Non-atomic test functions (coroutine functions of con modules) run under ``bootstrap``, one
fresh scheduler per test.  Non-atomic fixtures (function scope only) are set up and torn
down on that scheduler: pytest's setup phase records them, and the test's scheduler runs
their setup, the test and their teardown.  A fixture with teardown is an ``async def``
generator (con forbids ``@()`` in generators, so its teardown writes ``await g()``).

Deadline: a test whose scheduler is still running after ``conhook_timeout`` seconds (ini
option, ``--conhook-timeout``, or ``@pytest.mark.conhook_timeout(seconds)``; default 60, 0
for none) fails with the cactus stack of what its threads wait on; every thread is
interrupted and unwinds first.  (A test stuck in atomic code never reaches the scheduler;
use pytest-timeout for that.)  A test in which no thread can ever progress fails at once
with ``Deadlock``.
"""
from __future__ import annotations

import ast
import inspect
import sys
import threading

import pytest

from ._reserved_names import AWAIT_MARKER, RUNTIME_NAME
from . import _import_hook  # (importing conhook installed it; the pipeline loads when a module opts in)
from ._runtime.slips import explain

DEFAULT_TIMEOUT = 60.0
_FINDER_KEY = pytest.StashKey()


# -- options ----------------------------------------------------------------------------

def pytest_addoption(parser):
    parser.addini("conhook_timeout", "seconds a non-atomic test (with its fixtures) may run "
                  "before it fails with the cactus stack; 0 for no limit", default=str(DEFAULT_TIMEOUT))
    parser.getgroup("conhook").addoption(
        "--conhook-timeout", type=float, default=None, metavar="SECONDS",
        help="deadline of each non-atomic test (overrides the conhook_timeout ini option)")


def pytest_configure(config):
    config.addinivalue_line("markers", "conhook_timeout(seconds): deadline of this non-atomic "
                            "test, after which it fails with the cactus stack (0: none)")
    _install(config)  # for a plugin registered after the initial conftests


def pytest_load_initial_conftests(early_config, parser, args):
    _install(early_config)  # before conftest.py files, which may opt in too


# -- the import side ------------------------------------------------------------------------

def _install(config) -> None:
    if _FINDER_KEY in config.stash:
        return
    from _pytest.assertion.rewrite import AssertionRewritingHook
    hook = next((f for f in sys.meta_path
                 if isinstance(f, AssertionRewritingHook) and getattr(f, "config", None) is config), None)
    config.stash[_FINDER_KEY] = None
    if hook is None:
        return  # --assert=plain: opted-in test modules go through conhook's ordinary hook
    finder = TestModuleFinder(hook, config)
    sys.meta_path.insert(sys.meta_path.index(hook), finder)
    config.stash[_FINDER_KEY] = finder

    def uninstall():
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
    config.add_cleanup(uninstall)


class TestModuleFinder:
    """Sits right in front of pytest's hook; takes over the modules both want to rewrite."""

    def __init__(self, pytest_hook, config):
        self.pytest_hook = pytest_hook
        self.config = config

    def find_spec(self, name, path=None, target=None):
        spec = self.pytest_hook.find_spec(name, path, target)
        if spec is None or spec.loader is not self.pytest_hook:
            return spec  # pytest does not rewrite it: not ours either
        if name == "conhook" or name.startswith("conhook."):
            return spec  # conhook itself (pytest marks a plugin's package for rewriting)
        if not _con_finder().opts_in(name, spec.origin):
            return spec  # an ordinary test module: pytest's as it was
        spec.loader = TestModuleLoader(name, spec.origin, self.config)
        return spec

    def invalidate_caches(self):
        pass


def _con_finder():
    """The installed ConFinder (its paths and packages count as opt-in), or the default one."""
    return _import_hook.installed_finder() or _import_hook.ConFinder()


class TestModuleLoader(_import_hook.ConLoader):
    """Compiles a test module with conhook's pipeline and pytest's assertion rewriting.

    Test modules are small and change often: they are compiled afresh on every run, not cached.
    """

    def __init__(self, fullname, path, config):
        super().__init__(fullname, path)
        self.config = config

    def get_code(self, fullname):
        from ._compiler import pipeline
        path = self.get_filename(fullname)
        source = self.get_data(path)
        tree, rewrite = pipeline.parse_con(source, path)
        _assertion_rewriter()(path, self.config, source).run(tree)
        return pipeline.compile_tree(tree, rewrite, path)


_REWRITER = None


def _assertion_rewriter():
    """pytest's AssertionRewriter, taught to explain a non-atomic call as ``f@(args)``."""
    global _REWRITER
    if _REWRITER is not None:
        return _REWRITER
    from _pytest.assertion.rewrite import AssertionRewriter


    class ConAssertionRewriter(AssertionRewriter):
        def visit_Attribute(self, attr):
            # The token layer wrote f@(a) as f(a).__con_await__ (a marker for the bytecode
            # layer); explain it as the call the user wrote, and keep the marker.
            call = attr.value
            if attr.attr != AWAIT_MARKER or not isinstance(call, ast.Call):
                return super().visit_Attribute(attr)
            func, func_expl = self.visit(call.func)
            args, expls = [], []
            for arg in call.args:
                res, expl = self.visit(arg)
                args.append(res)
                expls.append(expl)
            keywords = []
            for keyword in call.keywords:
                res, expl = self.visit(keyword.value)
                keywords.append(ast.keyword(keyword.arg, res))
                expls.append(f"{keyword.arg}={expl}" if keyword.arg else f"**{expl}")
            awaited = ast.Attribute(ast.copy_location(ast.Call(func, args, keywords), call),
                                    AWAIT_MARKER, ast.Load())
            res = self.assign(ast.copy_location(awaited, attr))
            res_expl = self.explanation_param(self.display(res))
            return res, f"{res_expl}\n{{{res_expl} = {func_expl}@({', '.join(expls)})\n}}"

    _REWRITER = ConAssertionRewriter
    return _REWRITER


# -- the running side ---------------------------------------------------------------------

def _is_con(func) -> bool:
    """A coroutine function or async generator function of a module compiled by conhook."""
    from ._runtime import prejoin
    if not (inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)):
        return False
    return getattr(func, "__globals__", {}).get(RUNTIME_NAME) is prejoin


class _Deferred:
    """What pytest holds as a non-atomic fixture's value until the test's scheduler runs it."""
    __slots__ = ("func", "name", "args", "kwargs")

    def __init__(self, func, name, args, kwargs):
        self.func, self.name, self.args, self.kwargs = func, name, args, kwargs

    def __repr__(self):
        return f"<non-atomic fixture {self.name!r}, set up when the test runs>"


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef, request):
    func = fixturedef.func
    if getattr(func, "_conhook_deferred", False):
        return None  # a non-atomic fixture, set up before
    if not _is_con(func):
        for argname in fixturedef.argnames:  # (pytest's own setup gets the same, cached, values)
            if isinstance(request.getfixturevalue(argname), _Deferred):
                raise pytest.fail.Exception(
                    f"fixture {fixturedef.argname!r} is an ordinary function but uses the non-atomic "
                    f"fixture {argname!r}, whose value exists only on the test's scheduler: make "
                    f"{fixturedef.argname!r} non-atomic too", pytrace=False)
        return None
    if fixturedef.scope != "function":
        raise pytest.fail.Exception(
            f"non-atomic fixture {fixturedef.argname!r} has scope {fixturedef.scope!r}: each test "
            f"runs on a scheduler of its own, so non-atomic fixtures must have function scope "
            f"(make it an ordinary function, or drop the scope)", pytrace=False)
    name = fixturedef.argname

    def deferred(*args, **kwargs):
        return _Deferred(func, name, args, kwargs)

    deferred._conhook_deferred = True
    fixturedef.func = deferred  # pytest's own setup now records it, and caches the record
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    __tracebackhide__ = True
    function = pyfuncitem.obj
    funcargs = pyfuncitem.funcargs
    if not (_is_con(function) or any(isinstance(v, _Deferred) for v in funcargs.values())):
        return None
    from .api import bootstrap
    names = pyfuncitem._fixtureinfo.argnames
    bootstrap(_run_test, pyfuncitem, function, funcargs, names, _Deadline(_timeout_of(pyfuncitem)))
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item, call):
    """A test's failure said in conhook's words where it is a slip conhook recognises
    (``f@(x)`` in a test module that does not opt in: ``conhook._runtime.slips``)."""
    if call.excinfo is not None:
        error = call.excinfo.value
        explained = explain(error)
        if explained is not error:
            call.excinfo = pytest.ExceptionInfo.from_exception(explained)


def _timeout_of(item) -> float:
    marker = item.get_closest_marker("conhook_timeout")
    if marker is not None:
        return float(marker.args[0] if marker.args else marker.kwargs["seconds"])
    option = item.config.getoption("conhook_timeout", None)
    if option is not None:
        return option
    return float(item.config.getini("conhook_timeout"))


async def _run_test(item, function, funcargs, names, deadline):
    """The root thread of a test's scheduler: fixtures' setup, the test, fixtures' teardown."""
    __tracebackhide__ = True
    deadline.start(item)
    teardowns = []
    try:
        try:
            resolved = {}
            for name, value in list(funcargs.items()):
                if isinstance(value, _Deferred):
                    funcargs[name] = await _set_up(value, resolved, teardowns)
            result = function(**{name: funcargs[name] for name in names})
            if inspect.isawaitable(result):
                await result
        finally:
            await _tear_down(teardowns)
    except BaseException:
        if deadline.report is not None:
            raise pytest.fail.Exception(deadline.report, pytrace=False) from None
        raise
    finally:
        deadline.stop()
    if deadline.report is not None:
        raise pytest.fail.Exception(deadline.report, pytrace=False)


_run_test.__name__ = _run_test.__qualname__ = "pytest"  # the cactus stack: bootstrap - pytest - test_x


async def _set_up(fixture, resolved, teardowns):
    __tracebackhide__ = True
    key = id(fixture)
    if key in resolved:
        return resolved[key]
    kwargs = {}
    for name, value in fixture.kwargs.items():
        kwargs[name] = await _set_up(value, resolved, teardowns) if isinstance(value, _Deferred) else value
    if inspect.isasyncgenfunction(fixture.func):
        generator = fixture.func(*fixture.args, **kwargs)
        try:
            value = await generator.__anext__()
        except StopAsyncIteration:
            raise pytest.fail.Exception(f"non-atomic fixture {fixture.name!r} did not yield a value",
                                        pytrace=False) from None
        teardowns.append((fixture.name, generator))
    else:
        value = await fixture.func(*fixture.args, **kwargs)
    resolved[key] = value
    return value


async def _tear_down(teardowns):
    """Finish the fixtures' generators, last set up first; raise the first failure."""
    __tracebackhide__ = True
    first = None
    while teardowns:
        name, generator = teardowns.pop()
        try:
            await generator.__anext__()
        except StopAsyncIteration:
            continue
        except BaseException as error:  # noqa: BLE001 - the others are still torn down
            first = first or error
            continue
        first = first or pytest.fail.Exception(
            f"non-atomic fixture {name!r} yielded more than once", pytrace=False)
        await generator.aclose()
    if first is not None:
        raise first


class _Deadline:
    """Interrupts a test's program when its time runs out, after drawing its cactus stack.

    An OS timer posts to the test's kernel (the kernel's thread-safe wake-up), so no conhook
    timer is pending: a test in which no thread can progress still fails at once with
    ``Deadlock`` instead of waiting for its deadline.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.report = None
        self._timer = None
        self._lock = threading.Lock()
        self._done = False

    def start(self, item):
        if not self.seconds or self.seconds <= 0:
            return
        from ._runtime.kernel import current_kernel
        kernel = current_kernel()
        nodeid = item.nodeid

        def expire():  # runs in the kernel's thread
            from ._runtime.cactus_stack import tree
            if self._done or self.report is not None:
                return
            self.report = (f"{nodeid} did not finish within its conhook_timeout of {self.seconds:g} s; "
                           f"its threads were waiting here (cactus stack):\n{tree(kernel)}")
            kernel.interrupt_program(f"the test ran out of its conhook_timeout of {self.seconds:g} s")

        def post():  # runs in the timer's OS thread
            with self._lock:
                if not self._done:
                    kernel.post(expire)

        self._timer = threading.Timer(self.seconds, post)
        self._timer.daemon = True
        self._timer.start()

    def stop(self):
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()
