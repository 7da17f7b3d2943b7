"""The pytest plugin, through pytest's own ``pytester``: each test runs an inner pytest session."""
from __future__ import annotations

import importlib.metadata
import os
import pathlib
import textwrap

import pytest

pytest_plugins = ["pytester"]

CON_HEADER = "import pytest\nfrom con import idle, sleep, Event, Queue\n"


ROOT = pathlib.Path(__file__).resolve().parents[2]


def _plugin_args() -> list[str]:
    """Installed (pip install -e .), pytest loads the plugin by its entry point; in a plain
    checkout the inner sessions load it by name (both at once would register it twice)."""
    registered = any(ep.value == "conhook.pytest_plugin"
                     for ep in importlib.metadata.entry_points(group="pytest11"))
    return [] if registered else ["-p", "conhook.pytest_plugin"]


def _dedent(text):
    header = CON_HEADER if text.startswith(CON_HEADER) else ""
    return header + textwrap.dedent(text[len(header):])


@pytest.fixture
def run(pytester, monkeypatch):
    def run(*args, subprocess=False, **files):
        pytester.makepyfile(**{name: _dedent(text) for name, text in files.items()})
        # (hypothesis's plugin costs a second per inner session, and is not under test)
        args = (*_plugin_args(), "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args)
        if subprocess:  # sees conhook (and its entry point, if any) as this process does
            monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
            return pytester.runpytest_subprocess(*args)
        return pytester.runpytest(*args)
    return run


def test_failing_assert_shows_the_compared_values_and_the_call_as_written(run):
    result = run(test_values=CON_HEADER + """
        def double(x):
            idle@()
            return 2 * x

        class Box:
            def get(self, scale=1):
                idle@()
                return 5 * scale

        def test_call():
            assert double@(1) == 3

        def test_method_and_keyword():
            box = Box()
            assert box.get@(scale=2) < double@(4)
        """)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        ">       assert double@(1) == 3",
        "E       assert 2 == 3",
        "E        +  where 2 = double@(1)",
    ])
    result.stdout.fnmatch_lines([
        "E       assert 10 < 8",
        "E        +  where 10 = *@(scale=2)",
        "E        +    where * = <*Box object at *>.get",
        "E        +  and   8 = double@(4)",
    ])
    assert "__con_await__" not in result.stdout.str()


def test_tight_at_is_a_nonatomic_call_in_a_con_test_module_and_finder_order(run):
    # Were pytest's hook to compile this module, m@(1) would be m.__matmul__((1)).
    result = run(test_order=CON_HEADER + """
        import sys

        class M:
            def __matmul__(self, other):
                return "matrix product"

            def __call__(self, x):
                return idle()

        def answer():
            idle@()
            return 42

        def test_nonatomic_not_matmul():
            assert M()@(1) is None
            assert answer@() == 42

        def test_finder_sits_right_before_pytests_hook():
            names = [type(finder).__name__ for finder in sys.meta_path]
            at = names.index("TestModuleFinder")
            assert names[at + 1] == "AssertionRewritingHook"
            assert "AssertionRewritingHook" not in names[:at]
        """)
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize("args", [[], ["--import-mode=importlib"], ["--import-mode=append"]])
def test_import_modes(run, args):
    result = run(*args, test_modes=CON_HEADER + """
        def test_nonatomic():
            idle@()
            assert 1 + 1 == 3
        """)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E       assert (1 + 1) == 3"])


def test_assert_plain_still_runs_con_test_modules(run):
    # In a subprocess: in this process, the outer session's import hooks would take the module.
    result = run("--assert=plain", subprocess=True, test_plain=CON_HEADER + """
        def f():
            idle@()
            return 1

        def test_nonatomic():
            assert f@() == 1

        def test_nonatomic_fails():
            assert f@() == 2
        """)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([">       assert f@() == 2", "E       AssertionError"])
    assert "where 1 = f@()" not in result.stdout.str()  # plain asserts explain nothing


def test_module_that_does_not_opt_in_is_untouched(run):
    result = run(test_plain="""
        class M:
            def __matmul__(self, other):
                return ("matmul", other)

        def test_matmul_stays_matmul():
            m = M()
            assert m@(1) == ("matmul", 1)
            assert m@(2, 3) == ("matmul", (2, 3))

        def test_assertion_rewriting_is_pytests():
            assert len([1]) == 2

        async def test_async_is_not_ours():
            pass
        """)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["E       assert 1 == 2", "E        +  where 1 = len([1])"])
    result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])


def test_nonatomic_tests_run_on_a_scheduler_with_siblings(run):
    result = run(test_threads=CON_HEADER + """
        def producer(q, n):
            for i in range(n):
                q.put@(i)

        def test_producer_consumer():
            q = Queue(1)
            sibling producer@(q, 3)
            assert [q.get@() for _ in range(3)] == [0, 1, 2]

        def test_failure_in_sibling_propagates():
            def boom():
                idle@()
                raise ValueError("in sibling")
            sibling boom@()
            Event().wait@()

        class TestMethods:
            def test_method(self):
                sleep@(0)
        """)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*ValueError: in sibling"])


def test_nonatomic_fixtures_set_up_and_torn_down_on_the_tests_scheduler(run):
    result = run(conftest="""
        import pytest
        from con import idle, Queue
        from conhook._runtime.kernel import current_kernel

        EVENTS = []  # (what, the scheduler it ran on)

        @pytest.fixture
        def queue():
            idle@()
            EVENTS.append(("queue", current_kernel()))
            return Queue()
        """, test_fixtures=CON_HEADER + """
        from conftest import EVENTS, current_kernel

        @pytest.fixture
        async def served(queue):
            EVENTS.append(("served up", current_kernel()))
            yield queue
            await idle()
            EVENTS.append(("served down", current_kernel()))

        @pytest.fixture
        def plain():
            return "plain"

        def test_uses_fixtures(served, queue, plain):
            assert served is queue and plain == "plain"
            served.put_nowait(1)
            assert served.get@() == 1
            EVENTS.append(("test", current_kernel()))

        def test_again(served):  # the fixtures are set up afresh for each test
            assert served.qsize() == 0

        def test_after():
            assert [what for what, _ in EVENTS] == ["queue", "served up", "test", "served down",
                                                    "queue", "served up", "served down"]
            first, second = {id(kernel) for _, kernel in EVENTS[:4]}, {id(kernel) for _, kernel in EVENTS[4:]}
            assert len(first) == len(second) == 1 and first != second  # each test's own scheduler
        """)
    result.assert_outcomes(passed=3)


def test_ordinary_test_using_a_nonatomic_fixture_runs_on_a_scheduler(run):
    result = run(test_sync=CON_HEADER + """
        @pytest.fixture
        def queue():
            q = Queue()
            q.put@("ready")
            return q

        def test_ordinary(queue):
            assert queue.get_nowait() == "ready"
        """)
    result.assert_outcomes(passed=1)


def test_fixture_teardown_runs_when_the_test_fails(run):
    result = run(test_teardown=CON_HEADER + """
        LOG = []

        @pytest.fixture
        async def resource():
            LOG.append("up")
            yield "r"
            LOG.append("down")

        def test_fails(resource):
            idle@()
            assert resource == "s"

        def test_log():
            assert LOG == ["up", "down"]
        """)
    result.assert_outcomes(passed=1, failed=1)


def test_nonatomic_fixture_must_have_function_scope(run):
    result = run(test_scope=CON_HEADER + """
        @pytest.fixture(scope="module")
        def shared():
            idle@()
            return 1

        def test_it(shared):
            pass
        """)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*non-atomic fixture 'shared' has scope 'module'*"])


def test_ordinary_fixture_cannot_use_a_nonatomic_one(run):
    result = run(test_mixed=CON_HEADER + """
        @pytest.fixture
        def queue():
            idle@()
            return Queue()

        @pytest.fixture
        def size(queue):
            return queue.qsize()

        def test_it(size):
            pass
        """)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'size' is an ordinary function but uses the non-atomic "
                                 "fixture 'queue'*"])


def test_hanging_test_fails_with_its_cactus_stack(run):
    result = run(test_hang=CON_HEADER + """
        LOG = []

        def waiter(event):
            try:
                event.wait@()
            finally:
                LOG.append("unwound")

        @pytest.mark.conhook_timeout(0.2)
        def test_hangs():
            event = Event()
            sibling waiter@(event)
            sleep@(3600)

        def test_unwound():
            assert LOG == ["unwound"]
        """)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*test_hang.py::test_hangs did not finish within its conhook_timeout of 0.2 s;*",
        "bootstrap - pytest - test_hangs - sleep",
        "                                | waiter - wait",
    ])


@pytest.mark.parametrize("how", [["-o", "conhook_timeout=0.2"], ["--conhook-timeout", "0.2"]])
def test_deadline_from_ini_option_and_command_line(run, how):
    result = run(*how, test_deadline=CON_HEADER + """
        def test_hangs():
            sleep@(3600)
        """)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*did not finish within its conhook_timeout of 0.2 s*"])


def test_deadlocked_test_fails_at_once_with_deadlock(run):
    result = run(test_deadlock=CON_HEADER + """
        def test_waits_forever():
            Event().wait@()
        """)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Deadlock: deadlock: no conhook thread can make progress*",
                                 "*bootstrap - pytest - test_waits_forever - wait"])


def test_syntax_error_in_con_test_module_points_at_the_source(run):
    result = run(test_bad=CON_HEADER + """
        def gen():
            yield idle@()
        """)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_bad.py*line 5*", "*yield idle@()*",
                                 "*not allowed in a generator function*"])
