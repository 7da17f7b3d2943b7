"""Common slips get messages that name the function and the fix (issue 12, items 15, 16, 19):
@() on an ordinary function, asyncio code awaited by a conhook thread, @() in a module that does
not opt in, and the arguments con's own functions refuse."""
from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import textwrap
import traceback

import pytest

import con

THIS_FILE = __file__


def failure(fn, *args):
    """What con.bootstrap(fn, *args) raises."""
    try:
        con.bootstrap(fn, *args)
    except BaseException as exc:  # noqa: BLE001  (the test looks at whatever it is)
        return exc
    pytest.fail(f"{fn.__name__} raised nothing")


def last_frame(exc):
    return traceback.extract_tb(exc.__traceback__)[-1]


def plain_module(tmp_path, name, source):
    """Import `source` as module `name` the way Python does when it does not opt in."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nonatomic():
    con.idle@()
    return 1


# -- @() on what is not non-atomic (item 19) -----------------------------------------------------

def test_at_on_an_ordinary_function_names_it_and_the_fix():
    def main():
        print@("x")  # noqa: CON102 (the slip under test)
    exc = failure(main)
    assert type(exc) is TypeError
    assert str(exc) == ("print@(...): print is not a non-atomic function (it returned None, which "
                        "@() cannot run): call it without @, as print(...)")
    assert last_frame(exc).line == 'print@("x")  # noqa: CON102 (the slip under test)'


def test_timeout_called_with_at_says_to_call_it_without():
    def main():
        with con.timeout@(1):  # noqa: CON102 (the slip under test)
            pass
    exc = failure(main)
    assert type(exc) is TypeError
    assert "con.timeout is not a non-atomic function (it returned a timeout object" in str(exc)
    assert "as con.timeout(...)" in str(exc)


def test_bootstrap_of_a_call_object_names_the_function_and_leaves_no_warning(recwarn):
    with pytest.raises(TypeError) as info:
        con.bootstrap(nonatomic())
    assert str(info.value) == ("con.bootstrap() takes the function to run, not a call object: write "
                               "con.bootstrap(nonatomic) (or con.bootstrap(nonatomic, arg, ...)), "
                               "not con.bootstrap(nonatomic())")
    assert traceback.extract_tb(info.value.__traceback__)[-1].filename == THIS_FILE
    assert not [w for w in recwarn if "never" in str(w.message)]
    with pytest.raises(TypeError, match=r"takes the function to run \(and its arguments\), not 5"):
        con.bootstrap(5)


def test_to_thread_of_a_nonatomic_function_is_refused():
    def main():
        con.to_thread@(nonatomic)
    exc = failure(main)
    assert type(exc) is TypeError
    assert str(exc).startswith("to_thread@(nonatomic): nonatomic is non-atomic")
    assert "nonatomic@(...)" in str(exc) and "sibling nonatomic@(...)" in str(exc)


@pytest.mark.parametrize("make", [lambda: con.sleep("1"), lambda: con.sleep(None),
                                  lambda: con.timeout("1")], ids=["sleep-str", "sleep-None", "timeout-str"])
def test_time_needs_a_number(make):
    with pytest.raises(TypeError, match=r"^(sleep|timeout)\(\) needs a number of seconds \(an int or a "
                                        r"float\), not ('1'|None)$"):
        make()


def test_read_of_a_negative_size_says_what_it_needs():
    def main():
        listener = con.tcplisten@(con.ipv4addr("127.0.0.1", 0))
        with listener, con.tcpconnect@(listener.addresses[0]) as stream:
            stream.read@(-1)
    exc = failure(main)
    assert type(exc) is ValueError
    assert str(exc) == "read() needs max_bytes >= 1, not -1"


# -- asyncio code awaited by a conhook thread (item 16) -------------------------------------------

def asyncio_sleep():
    asyncio.sleep@(0.1)


def asyncio_sleep0():
    asyncio.sleep@(0)


def asyncio_queue_get():
    asyncio.Queue().get@()


def asyncio_open_connection():
    asyncio.open_connection@("127.0.0.1", 1)


@pytest.mark.parametrize("main, called, where", [
    (asyncio_sleep, "asyncio.sleep", "asyncio.tasks.sleep"),
    (asyncio_sleep0, "asyncio.sleep", "asyncio.tasks.sleep"),
    (asyncio_queue_get, "asyncio.Queue().get", "asyncio.queues.Queue.get"),
    (asyncio_open_connection, "asyncio.open_connection", "asyncio.streams.open_connection"),
], ids=["sleep", "sleep0", "queue-get", "open-connection"])
def test_asyncio_code_awaited_with_at_is_the_promised_type_error(main, called, where):
    exc = failure(main)
    assert type(exc) is TypeError
    assert str(exc).startswith(f"{called}@(...) awaited asyncio code ({where}), which runs only on an "
                               f"asyncio event loop")
    assert "to_thread@(asyncio.run, ...)" in str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    assert {frame.filename for frame in frames} == {THIS_FILE}  # the user's frames only
    assert frames[-1].line.startswith(f"{called}@(")


def test_asyncio_run_of_a_nonatomic_function_names_conhook_and_bootstrap():
    def main():
        con.sleep@(0.001)
    with pytest.raises(RuntimeError) as info:
        asyncio.run(main())
    assert "conhook operation 'sleep'" in str(info.value)
    assert "con.bootstrap(f, *args)" in str(info.value)


# -- @() in a module that does not opt in (item 15) ------------------------------------------------

def test_at_in_a_module_that_did_not_opt_in_says_how_to_opt_in(tmp_path):
    helper = plain_module(tmp_path, "helper", """\
        try:
            import con
        except ImportError:
            con = None

        def nap():
            con.sleep@(0)

        def call(f):
            return f@(1)
        """)

    def main():
        helper.nap()
    exc = failure(main)
    assert type(exc) is TypeError
    assert str(exc).startswith("con.sleep@(...) is a non-atomic call, but module 'helper' was not "
                               "rewritten by conhook, so @ is matrix multiplication there")
    assert "`import con`" in str(exc) and "column 0" in str(exc)
    # A non-atomic function of the program's own, called from there:
    exc = failure(helper.call, nonatomic)
    assert str(exc).startswith("f@(...) is a non-atomic call, but module 'helper' was not rewritten")
    # What conhook cannot recognise as its own is a matrix product that failed: left alone.
    exc = failure(helper.call, [1])
    assert str(exc) == "unsupported operand type(s) for @: 'list' and 'int'"


def test_pytest_says_a_test_module_did_not_opt_in(tmp_path):
    (tmp_path / "nonatomic_helpers.py").write_text("import con\n\ndef one():\n    con.idle@()\n    return 1\n")
    (tmp_path / "test_slip.py").write_text(
        "from nonatomic_helpers import one\n\ndef test_one():\n    assert one@() == 1\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert ("TypeError: one@(...) is a non-atomic call, but module 'test_slip' was not rewritten by "
            "conhook") in result.stdout


def test_the_runner_says_a_module_did_not_opt_in(tmp_path):
    (tmp_path / "helper.py").write_text("if True:\n    import con\n\ncon.idle@()\n")
    (tmp_path / "prog.py").write_text("import helper\n")
    result = subprocess.run([sys.executable, "-m", "conhook", "prog.py"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert ("TypeError: con.idle@(...) is a non-atomic call, but module 'helper' was not rewritten "
            "by conhook") in result.stderr


# -- tracebacks without conhook's frames, names as the API spells them (item 18) -------------------

def test_a_syntax_error_in_a_con_module_imported_from_plain_python_shows_what_cpython_shows(tmp_path):
    (tmp_path / "broken.py").write_text("import con\n\ndef f():\n    x = = con.idle@()\n")
    (tmp_path / "main.py").write_text("import conhook\nimport broken\n")
    result = subprocess.run([sys.executable, "main.py"], cwd=tmp_path, capture_output=True, text=True)
    assert result.stderr == (
        "Traceback (most recent call last):\n"
        f'  File "{tmp_path / "main.py"}", line 2, in <module>\n'
        "    import broken\n"
        f'  File "{tmp_path / "broken.py"}", line 4\n'
        "    x = = con.idle@()\n"
        "        ^\n"
        "SyntaxError: invalid syntax\n")


def test_an_unknown_host_is_named_and_only_the_users_frames_are_shown():
    def main():
        con.tcpconnect@("no-such-host.invalid", 80)
    exc = failure(main)
    assert isinstance(exc, OSError)
    assert "cannot resolve 'no-such-host.invalid' (port 80)" in str(exc)
    assert exc.__suppress_context__ and exc.__cause__ is None
    assert {frame.filename for frame in traceback.extract_tb(exc.__traceback__)} == {THIS_FILE}


@pytest.mark.parametrize("make", [lambda: con.ipv4addr("localhost", 80), lambda: con.ipv6addr("::1", -1),
                                  lambda: con.ipv4addr(b"1.2.3.4", 80)], ids=["name", "port", "bytes"])
def test_a_refused_address_shows_the_users_frames_only(make):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert {frame.filename for frame in traceback.extract_tb(info.value.__traceback__)} == {THIS_FILE}


def test_errors_are_printed_as_the_api_names_them():
    assert traceback.format_exception_only(con.Deadlock("stuck")) == ["con.Deadlock: stuck\n"]
    assert traceback.format_exception_only(con.Interrupted("why")) == ["con.Interrupted: why\n"]
