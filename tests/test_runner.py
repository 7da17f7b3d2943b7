"""``python -m conhook`` (docs/spec.md §2.3), run in subprocesses and compared with plain ``python``.

Wherever docs/spec.md §2.3 says "as CPython sets them", the same program is run both ways and
the results are compared whole: ``sys.argv``, all of ``sys.path``, the ``__main__``
globals, exit codes and, for programs without con syntax, stderr byte for byte.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conhook._compiler import tokens

ROOT = Path(__file__).resolve().parent.parent

# Prints what `python` decides about the program it runs.
REPORT = """\
import json, sys
g = globals()
spec = g.get("__spec__")
print(json.dumps({
    "argv": sys.argv,
    "path": sys.path,
    "name": __name__,
    "file": g.get("__file__", "<unset>"),
    "package": g.get("__package__", "<unset>"),
    "spec": getattr(spec, "name", None),
    "cached": g.get("__cached__", "<unset>"),
    "builtins": type(g.get("__builtins__")).__name__,
    "is_main_module": sys.modules["__main__"].__dict__ is g,
}))
"""


def environment(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONSAFEPATH", "PYTHONPYCACHEPREFIX", "PYTHONSTARTUP", "PYTHONINSPECT")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def python(*args, cwd, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env or environment(),
                          capture_output=True, text=True, timeout=60)


def con(*args, cwd, env=None) -> subprocess.CompletedProcess:
    return python("-m", "conhook", *args, cwd=cwd, env=env)


def both(*args, cwd, env=None) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """Run ``args`` under plain python and under the runner."""
    return python(*args, cwd=cwd, env=env), con(*args, cwd=cwd, env=env)


def report(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


# A con program that needs no runtime: it drives its non-atomic call with send().
CON_SCRIPT = """\
import sys

async def double(x):
    return 2 * x

def main(args):
    return double@(len(args)) + double@(0)

if __name__ == "__main__":
    try:
        main(sys.argv[1:]).send(None)
    except StopIteration as done:
        print("result", done.value)
"""


# -- sys.argv, __main__ and sys.path as CPython sets them ------------------------------

@pytest.mark.parametrize("how", ["relative", "absolute", "dotted"])
def test_script_matches_plain_python(tmp_path, how):
    write(tmp_path, {"app/report.py": REPORT})
    script = {"relative": "app/report.py",
              "absolute": str(tmp_path / "app" / "report.py"),
              "dotted": "./app/../app/report.py"}[how]
    plain, ours = both(script, "a", "b", cwd=tmp_path)
    assert report(ours) == report(plain)
    assert report(ours)["argv"] == [script, "a", "b"]
    assert report(ours)["name"] == "__main__"
    assert report(ours)["path"][0] == str(tmp_path / "app")


def test_script_in_the_working_directory(tmp_path):
    write(tmp_path, {"report.py": REPORT})
    plain, ours = both("report.py", "a", "b", cwd=tmp_path)
    assert report(ours) == report(plain)
    assert report(ours)["argv"] == ["report.py", "a", "b"]


@pytest.mark.parametrize("link", ["file", "directory"])
def test_symlinked_script_matches_plain_python(tmp_path, link):
    write(tmp_path, {"real/report.py": REPORT})
    (tmp_path / "links").mkdir()
    if link == "file":
        os.symlink(tmp_path / "real" / "report.py", tmp_path / "links" / "report.py")
        script = "links/report.py"
    else:
        os.symlink(tmp_path / "real", tmp_path / "links" / "dir")
        script = "links/dir/report.py"
    plain, ours = both(script, "x", cwd=tmp_path)
    assert report(ours) == report(plain)
    assert report(ours)["path"][0] == str(tmp_path / "real")  # the link is resolved
    assert report(ours)["file"] == str(tmp_path / script)      # __file__ keeps it


def test_module_matches_python_dash_m(tmp_path):
    write(tmp_path, {"pkg/__init__.py": "", "pkg/report.py": REPORT})
    plain, ours = both("-m", "pkg.report", "a", "b", cwd=tmp_path)
    assert report(ours) == report(plain)
    assert report(ours)["argv"] == [str(tmp_path / "pkg" / "report.py"), "a", "b"]
    assert report(ours)["path"][0] == str(tmp_path)
    assert (report(ours)["spec"], report(ours)["package"]) == ("pkg.report", "pkg")


def test_top_level_module_matches_python_dash_m(tmp_path):
    write(tmp_path, {"report.py": REPORT})
    plain, ours = both("-m", "report", "z", cwd=tmp_path)
    assert report(ours) == report(plain)
    assert report(ours)["package"] == ""


def test_package_runs_its_main_module_like_python_dash_m(tmp_path):
    write(tmp_path, {"pkg/__init__.py": "", "pkg/__main__.py": REPORT})
    plain, ours = both("-m", "pkg", "a", cwd=tmp_path)
    assert report(ours) == report(plain)
    assert report(ours)["spec"] == "pkg.__main__"
    assert report(ours)["argv"] == [str(tmp_path / "pkg" / "__main__.py"), "a"]


def test_code_matches_python_dash_c(tmp_path):
    plain, ours = both("-c", REPORT, "a", "b", cwd=tmp_path)
    assert report(ours) == report(plain)
    assert report(ours)["argv"] == ["-c", "a", "b"]
    assert report(ours)["path"][0] == ""


@pytest.mark.parametrize("mode", ["script", "module", "code"])
def test_safe_path_adds_no_directory_like_python(tmp_path, mode):
    # -P / PYTHONSAFEPATH (3.11+): CPython puts neither the script's directory nor the cwd first.
    write(tmp_path, {"lib/pkg/__init__.py": "", "lib/pkg/report.py": REPORT, "report.py": REPORT})
    env = environment(PYTHONSAFEPATH="1",
                      PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path / "lib")]))
    args = {"script": ["report.py"], "module": ["-m", "pkg.report"], "code": ["-c", REPORT]}[mode]
    plain, ours = both(*args, "q", cwd=tmp_path, env=env)
    assert report(ours) == report(plain)
    assert str(tmp_path) not in report(ours)["path"]


def test_script_is_rewritten_without_opting_in(tmp_path):
    write(tmp_path, {"prog.py": CON_SCRIPT})
    result = con("prog.py", "a", "b", "c", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "result 6\n", "")


def test_module_is_rewritten_without_opting_in(tmp_path):
    write(tmp_path, {"pkg/__init__.py": "", "pkg/__main__.py": CON_SCRIPT})
    result = con("-m", "pkg", "a", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "result 2\n", "")


def test_code_is_rewritten(tmp_path):
    result = con("-c", CON_SCRIPT, "a", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "result 2\n", "")


def test_script_imports_an_opted_in_module_from_its_directory(tmp_path):
    write(tmp_path, {
        "app/helper.py": """\
            import conhook

            async def triple(x):
                return 3 * x

            def twice_tripled(x):
                return triple@(x) + triple@(x)
            """,
        "app/plainhelper.py": """\
            class M:
                def __matmul__(self, other):
                    return "matmul"
            RESULT = M()@(1)
            """,
        "app/main.py": """\
            import helper, plainhelper

            def main():
                return helper.twice_tripled@(7)

            try:
                main().send(None)
            except StopIteration as done:
                print(done.value, plainhelper.RESULT, type(helper.__loader__).__name__)
            """,
    })
    (tmp_path / "elsewhere").mkdir()
    result = con(str(tmp_path / "app" / "main.py"), cwd=tmp_path / "elsewhere")
    # The helper opted in and is rewritten; the module that did not is left alone.
    assert (result.returncode, result.stdout, result.stderr) == (0, "42 matmul ConLoader\n", "")


# -- exit codes and errors ------------------------------------------------------------------

EXITS = {
    "system-exit-3": "raise SystemExit(3)",
    "sys-exit-message": "import sys; sys.exit('bye')",
    "sys-exit-none": "import sys; sys.exit()",
    "falls-off-the-end": "x = 1",
    "uncaught": "def f():\n    return g()\ndef g():\n    raise KeyError('k')\nf()",
    "chained": "try:\n    1 / 0\nexcept ZeroDivisionError:\n    raise ValueError('v')",
    "syntax-error": "def f():\n    x = (1 +\n",
    "indentation-error": "if True:\nx = 1\n",
    "keyboard-interrupt": "raise KeyboardInterrupt",
    "exception-with-note": "e = ValueError('v')\ne.add_note('a note')\nraise e",
}


@pytest.mark.parametrize("body", EXITS.values(), ids=EXITS.keys())
def test_exit_status_and_stderr_match_plain_python(tmp_path, body):
    write(tmp_path, {"prog.py": body + "\n"})
    plain, ours = both("prog.py", cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (plain.returncode, plain.stdout, plain.stderr)


@pytest.mark.parametrize("body", EXITS.values(), ids=EXITS.keys())
def test_code_exit_status_and_stderr_match_python_dash_c(tmp_path, body):
    plain, ours = both("-c", body, cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (plain.returncode, plain.stdout, plain.stderr)


def test_main_namespace_is_the_main_module(tmp_path):
    # pickle finds classes of the program through sys.modules["__main__"].
    write(tmp_path, {"prog.py": """\
        import pickle

        class Point:
            def __init__(self, x):
                self.x = x

        print(pickle.loads(pickle.dumps(Point(3))).x, Point.__module__)
        """})
    plain, ours = both("prog.py", cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "3 __main__\n", "")
    assert ours.stdout == plain.stdout


def test_system_exit_3_exits_3(tmp_path):
    write(tmp_path, {"prog.py": "def main():\n    raise SystemExit(3)\nmain()\n"})
    result = con("prog.py", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (3, "")


def test_code_exit_status_5_matches_python_dash_c(tmp_path):
    plain, ours = both("-c", "import sys; print(sys.argv); sys.exit(5)", "x", cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert ours.returncode == 5


def test_uncaught_exception_through_nonatomic_calls_has_no_conhook_frames(tmp_path):
    write(tmp_path, {"prog.py": """\
        async def fail(x):
            raise ValueError(x)

        def middle():
            s = "héllo"; return fail@(1)

        def main():
            return middle@()

        main().send(None)
        """})
    result = con("prog.py", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: 1"
    files = [line.strip() for line in lines if line.lstrip().startswith("File ")]
    assert files == [f'File "{tmp_path / "prog.py"}", line {n}, in {where}'
                     for n, where in [(10, "<module>"), (8, "main"), (5, "middle"), (2, "fail")]]
    assert "conhook" not in result.stderr
    shown = lines.index(files[2].join(["  ", ""])) + 1
    assert lines[shown].strip() == 's = "héllo"; return fail@(1)'
    marks = lines[shown + 1]
    marked = [i for i, ch in enumerate(marks) if ch in "^~"]
    start = lines[shown].index("fail@(1)")
    assert (marked[0], marked[-1] + 1) == (start, start + len("fail@(1)"))


def test_error_while_importing_an_opted_in_module_matches_plain_python(tmp_path):
    # Under plain python the helper is imported before conhook is; under the runner it is
    # rewritten. The traceback must be the same: no importlib and no conhook frames.
    write(tmp_path, {
        "helper.py": "import conhook\ndef fail():\n    raise ValueError('at import')\nfail()\n",
        "prog.py": "import helper\n",
    })
    plain, ours = both("prog.py", cwd=tmp_path)
    assert (ours.returncode, ours.stderr) == (plain.returncode, plain.stderr)
    assert "importlib" not in ours.stderr and ours.stderr.count("File ") == 3


def test_syntax_error_in_an_opted_in_module_matches_plain_python(tmp_path):
    write(tmp_path, {"helper.py": "import conhook\nx = (1 +\n", "prog.py": "import helper\n"})
    plain, ours = both("prog.py", cwd=tmp_path)
    assert (ours.returncode, ours.stderr) == (plain.returncode, plain.stderr)


def test_con_syntax_error_in_an_imported_module_shows_only_user_frames(tmp_path):
    write(tmp_path, {
        "helper.py": "import conhook\ndef gen():\n    s = 'é'; yield fetch@(1)\n",
        "prog.py": "import helper\n",
    })
    result = con("prog.py", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[:5] == [
        "Traceback (most recent call last):",
        f'  File "{tmp_path / "prog.py"}", line 1, in <module>',
        "    import helper",
        f'  File "{tmp_path / "helper.py"}", line 3',
        "    s = 'é'; yield fetch@(1)",
    ]
    assert lines[5].index("^") == lines[4].index("@(1)")  # at the call's '@
    assert lines[6].startswith("SyntaxError: ") and len(lines) == 7


def test_con_syntax_error_points_at_the_users_file_line_and_column(tmp_path):
    write(tmp_path, {"prog.py": """\
        def gen():
            s = "é"; yield fetch@(1)
        """})
    result = con("prog.py", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f'  File "{tmp_path / "prog.py"}", line 2'
    assert lines[1].strip() == 's = "é"; yield fetch@(1)'
    assert lines[2].index("^") == lines[1].index("@(1)")  # at the call's '@'
    assert lines[2].rstrip().endswith("^") and len(lines[2].rstrip()) == len(lines[1].rstrip())
    assert lines[-1].startswith("SyntaxError: ") and "generator" in lines[-1]
    assert "conhook" not in result.stderr and "Traceback" not in result.stderr


def test_missing_script_exits_2_with_pythons_wording(tmp_path):
    plain, ours = both("missing.py", "arg", cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert ours.returncode == 2
    assert "can't open file" in ours.stderr and str(tmp_path / "missing.py") in ours.stderr


@pytest.mark.parametrize("name, files", [
    ("nosuchmodule", {}),
    ("nopkg.mod", {}),
    ("pkg.nosuch", {"pkg/__init__.py": ""}),
    ("pkg", {"pkg/__init__.py": ""}),
    ("pkg.__main__", {"pkg/__init__.py": "", "pkg/__main__/__init__.py": ""}),
    ("nspkg", {"nspkg/data.txt": ""}),
    ("report.py", {"report.py": "x = 1\n"}),
    (".relative", {}),
], ids=["missing", "missing-parent", "missing-submodule", "package-without-main",
        "package-as-main", "namespace-package", "dot-py-suffix", "relative"])
def test_module_that_cannot_run_fails_like_python_dash_m(tmp_path, name, files):
    write(tmp_path, files)
    plain, ours = both("-m", name, cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert ours.returncode == 1


# -- --show and --dis ------------------------------------------------------------------------

def test_show_prints_the_token_rewritten_source(tmp_path):
    write(tmp_path, {"prog.py": CON_SCRIPT})
    result = con("--show", "prog.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == tokens.rewrite_source(CON_SCRIPT, "prog.py").source
    assert "double(len(args)).__con_await__" in result.stdout and "@(" not in result.stdout
    assert len(result.stdout.splitlines()) == len(CON_SCRIPT.splitlines())


def test_show_leaves_source_without_con_syntax_unchanged(tmp_path):
    write(tmp_path, {"report.py": REPORT})
    result = con("--show", "report.py", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, REPORT)


def test_dis_prints_the_rewritten_bytecode(tmp_path):
    write(tmp_path, {"prog.py": CON_SCRIPT})
    result = con("--dis", "prog.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "GET_AWAITABLE" in result.stdout and "SEND" in result.stdout
    assert "__con_await__" not in result.stdout  # every marker was replaced
    assert "main" in result.stdout


@pytest.mark.parametrize("option", ["--show", "--dis"])
def test_show_and_dis_of_a_missing_file_exit_2(tmp_path, option):
    result = con(option, "missing.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "can't open file 'missing.py'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("option, body, span", [
    ("--show", "def f():\n    x = sibling g@(1)\n", "sibling"),
    ("--dis", "def f():\n    yield g@(1)\n", "g@(1)"),
])
def test_show_and_dis_report_syntax_errors_like_python(tmp_path, option, body, span):
    write(tmp_path, {"bad.py": body})
    result = con(option, "bad.py", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == '  File "bad.py", line 2'
    caret = lines[1].index(span) + (span.index("@(") if "@(" in span else 0)  # a call: its '@'
    assert lines[2].index("^") == caret
    assert lines[-1].startswith("SyntaxError: ") and len(lines) == 4


def test_dis_into_a_pipe_closed_early_ends_quietly(tmp_path):
    # `python -m conhook --dis x.py | head`: more output than a pipe holds, a reader that stops.
    write(tmp_path, {"big.py": "".join(f"def f{i}():\n    g@({i})\n" for i in range(3000))})
    process = subprocess.Popen([sys.executable, "-m", "conhook", "--dis", "big.py"], cwd=tmp_path,
                               env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.read(100)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) == 1
    assert stderr == ""  # no BrokenPipeError, no "Exception ignored"


def test_the_usage_lines_take_show_and_dis_with_a_file_alone(tmp_path):
    usage = con("--help", cwd=tmp_path).stdout
    assert "(--show | --dis) FILE" in usage
    assert not [line for line in usage.splitlines() if "--show" in line and "script.py" in line]
    assert con("--show", "a.py", "script.py", cwd=tmp_path).returncode == 2


@pytest.mark.parametrize("args", [["--show"], ["--dis", "a.py", "b.py"], ["-c"], ["-m"], ["--bogus"]])
def test_bad_usage_exits_2(tmp_path, args):
    result = con(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: python -m conhook" in result.stderr


# -- SIGTERM ---------------------------------------------------------------------------------

def _run_until_ready_then(signals, body, tmp_path):
    """Run `body` under ``python -m conhook``; once it prints "ready", send each of `signals`
    (0.3 s apart); return (exit status, everything it printed)."""
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(body))
    proc = subprocess.Popen([sys.executable, "-m", "conhook", str(script)], cwd=tmp_path,
                            env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        for signum in signals:
            proc.send_signal(signum)
            time.sleep(0.3)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out


def test_sigterm_unwinds_a_running_program_as_ctrl_c_does(tmp_path):
    status, out = _run_until_ready_then([signal.SIGTERM], """
        from con import bootstrap, sleep

        def worker(n):
            try:
                sleep@(30)
            finally:
                print("worker", n, "cleaned up", flush=True)

        def main():
            for n in range(2):
                sibling worker@(n)
            print("ready", flush=True)

        bootstrap(main)
    """, tmp_path)
    assert "worker 0 cleaned up" in out and "worker 1 cleaned up" in out
    assert out.rstrip().endswith("KeyboardInterrupt") and "conhook" not in out
    assert status == -signal.SIGTERM  # and the parent sees that SIGTERM ended it


def test_sigterm_in_running_user_code_is_reported_without_the_handlers_frames(tmp_path):
    status, out = _run_until_ready_then([signal.SIGTERM], """
        from con import bootstrap

        def main():
            print("ready", flush=True)
            while True:
                pass

        bootstrap(main)
    """, tmp_path)
    assert out.rstrip().endswith("KeyboardInterrupt") and "conhook" not in out, out
    assert "in main" in out
    assert status == -signal.SIGTERM


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_landing_in_user_code_shows_no_conhook_frame(tmp_path, signum):
    # The signal arrives while the program runs its own code (here: at once, as SIGTERM right
    # after a print may): KeyboardInterrupt is raised there, with no frame of a handler.
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(f"""
        import os, traceback
        from con import bootstrap

        def busy():
            try:
                os.kill(os.getpid(), {int(signum)})
                while True:
                    pass
            except KeyboardInterrupt:
                traceback.print_exc()  # as the program sees it
                raise

        def main():
            sibling busy@()

        bootstrap(main)
    """))
    result = con(str(script), cwd=tmp_path)
    assert result.returncode == -signum
    seen, escaped = result.stderr.split("KeyboardInterrupt\n")[:2]
    for traceback in (seen, escaped):
        assert "os.kill(os.getpid()" in traceback or "while True" in traceback, result.stderr
        assert str(ROOT / "conhook") not in traceback and "on_sigterm" not in traceback, result.stderr


def test_sigterm_caught_as_keyboard_interrupt_exits_0(tmp_path):
    status, out = _run_until_ready_then([signal.SIGTERM], """
        from con import bootstrap, sleep

        def main():
            print("ready", flush=True)
            sleep@(30)

        try:
            bootstrap(main)
        except KeyboardInterrupt:
            print("stopped")
    """, tmp_path)
    assert (status, out) == (0, "stopped\n")


def test_a_second_sigterm_stops_a_program_whose_cleanup_hangs(tmp_path):
    status, out = _run_until_ready_then([signal.SIGTERM] * 2, """
        import time
        from con import bootstrap, sleep

        def main():
            try:
                print("ready", flush=True)
                sleep@(30)
            finally:
                time.sleep(30)  # atomic: the first SIGTERM cannot end it

        bootstrap(main)
    """, tmp_path)
    assert status == -signal.SIGTERM


def test_sigterm_outside_a_scheduler_ends_the_process_at_once(tmp_path):
    status, out = _run_until_ready_then([signal.SIGTERM], """
        import time
        print("ready", flush=True)
        try:
            time.sleep(30)
        finally:
            print("not reached")
    """, tmp_path)
    assert (status, out) == (-signal.SIGTERM, "")
