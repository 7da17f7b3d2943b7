"""``python -m conhook`` runs what ``python`` runs: a zipapp, a directory, stdin; ``--version``;
the ``conhook`` console script; ``multiprocessing`` children (issue 13, item 6; docs/spec.md §2.3).

Each is compared with plain ``python`` running the same program where CPython decides something
(``sys.argv``, ``sys.path``, the ``__main__`` globals, errors).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipapp

import pytest
from test_runner import REPORT, con, environment, python, report, write

import conhook

# REPORT, and the type of ``__loader__`` (zipimporter, SourceFileLoader, BuiltinImporter).
REPORT_LOADER = REPORT.replace('"builtins":', '"loader": type(g.get("__loader__")).__name__, "builtins":')

# Con syntax that plain Python cannot even compile (``sibling``), run in and out of a scheduler.
CON_PROGRAM = """\
import con

def double(x):
    con.sleep@(0)
    return 2 * x

def both(x):
    sibling double@(x)
    return double@(x + 1)

if __name__ == "__main__":
    print("result", con.bootstrap(both, 20))
"""


def run(argv, *, cwd, stdin=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env or environment(), input=stdin,
                          capture_output=True, text=True, timeout=120)


def both(*args, cwd, stdin=None):
    """``args`` run by plain python and by the runner."""
    return (run([sys.executable, *args], cwd=cwd, stdin=stdin),
            run([sys.executable, "-m", "conhook", *args], cwd=cwd, stdin=stdin))


# -- zipapps and directories ---------------------------------------------------------

@pytest.mark.parametrize("spelling", ["app.pyz", "./sub/../app.pyz"])
def test_zipapp_matches_plain_python(tmp_path, spelling):
    write(tmp_path, {"src/__main__.py": REPORT_LOADER, "sub/.keep": ""})
    zipapp.create_archive(tmp_path / "src", tmp_path / "app.pyz")
    plain, ours = both(spelling, "a", "b", cwd=tmp_path)
    assert report(ours) == report(plain)
    assert report(ours)["loader"] == "zipimporter"
    assert report(ours)["argv"] == [spelling, "a", "b"]


def test_zipapp_of_con_code_runs(tmp_path):
    write(tmp_path, {"src/__main__.py": CON_PROGRAM})
    zipapp.create_archive(tmp_path / "src", tmp_path / "app.pyz")
    ours = con("app.pyz", cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "result 42\n", "")


# A zipapp of several modules: con ones (a module; a package whose submodule starts a sibling),
# a plain one whose tight ``@`` is a matrix product, and a data file read through the package.
ARCHIVED = {
    "src/tools.py": """\
        from con import sleep

        def twice(x):
            sleep@(0)
            return 2 * x
        """,
    "src/pkg/__init__.py": "import con\n",
    "src/pkg/work.py": """\
        from con import sleep

        def put(out, x):
            sleep@(0)
            out.append(2 * x)

        def both(x):
            out = []
            sibling put@(out, x)
            put@(out, x + 1)
            return out
        """,
    "src/pkg/data.txt": "kept\n",
    "src/plain.py": """\
        class Matrix:
            def __matmul__(self, other):
                return 3 * other

        def product():
            return Matrix()@(2)
        """,
}
ARCHIVED_MAIN = """\
import con
import pkg.work, plain, tools
from importlib.resources import files

def main():
    return (tools.twice@(20), sorted(pkg.work.both@(1)), plain.product(),
            files("pkg").joinpath("data.txt").read_text().strip(), tools.__file__.endswith("app.pyz/tools.py"))

print(con.bootstrap(main))
"""


def test_a_zipapps_con_modules_are_rewritten_and_its_plain_ones_are_not(tmp_path):
    write(tmp_path, {**ARCHIVED, "src/__main__.py": ARCHIVED_MAIN})
    zipapp.create_archive(tmp_path / "src", tmp_path / "app.pyz")
    ours = con("app.pyz", cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "(40, [2, 4], 6, 'kept', True)\n", "")


def test_an_archive_on_sys_path_before_conhook_was_imported_gets_its_con_modules_rewritten(tmp_path):
    # Plain python: zipimport made the archive's importer at start-up, before `import conhook`.
    main = "import conhook, con, tools\nprint(con.bootstrap(tools.twice, 21))\n"
    write(tmp_path, {**ARCHIVED, "src/__main__.py": main})
    zipapp.create_archive(tmp_path / "src", tmp_path / "app.pyz")
    plain = python("app.pyz", cwd=tmp_path)
    assert (plain.returncode, plain.stdout, plain.stderr) == (0, "42\n", "")


def test_archived_con_modules_follow_install_and_uninstall(tmp_path):
    write(tmp_path, ARCHIVED)
    shutil.make_archive(str(tmp_path / "lib"), "zip", tmp_path / "src")
    probe = """\
import inspect, sys
import conhook
sys.path.insert(0, "lib.zip")
import tools
print(inspect.iscoroutinefunction(tools.twice))
conhook.uninstall()
del sys.modules["tools"]
import tools
print(inspect.iscoroutinefunction(tools.twice), any("Con" in getattr(h, "__name__", "") for h in sys.path_hooks))
conhook.install()
del sys.modules["tools"]
import tools
print(inspect.iscoroutinefunction(tools.twice))
"""
    result = python("-c", probe, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "True\nFalse False\nTrue\n", "")


def test_a_syntax_error_in_an_archived_con_module_names_its_file_line_and_column(tmp_path):
    write(tmp_path, {"src/__main__.py": "import con\nimport broken\n",
                     "src/broken.py": "import con\n\ndef f():\n    sibling 1 + g@()\n"})
    zipapp.create_archive(tmp_path / "src", tmp_path / "app.pyz")
    ours = con("app.pyz", cwd=tmp_path)
    assert ours.returncode == 1
    assert f'File "{tmp_path / "app.pyz" / "broken.py"}", line 4' in ours.stderr
    assert ours.stderr.rstrip().splitlines()[-3:] == [  # the con compiler's error, not Python's
        "    sibling 1 + g@()", "    ^",
        "SyntaxError: 'sibling' is a statement of its own: write 'sibling f@(args)' on a line (or after ';' or ':') "
        "of its own"]
    assert "conhook" not in ours.stderr  # the user's frames only


@pytest.mark.parametrize("spelling", ["app", "./app/", "<absolute>/app"])
def test_directory_with_a_main_module_matches_plain_python(tmp_path, spelling):
    write(tmp_path, {"app/__main__.py": REPORT_LOADER})
    spelling = spelling.replace("<absolute>", str(tmp_path))
    plain, ours = both(spelling, "x", cwd=tmp_path)
    assert report(ours) == report(plain)
    assert report(ours)["path"][0] == os.path.join(str(tmp_path), spelling)


def test_directory_of_con_code_runs_and_is_cached(tmp_path):
    write(tmp_path, {"app/__main__.py": CON_PROGRAM})
    env = environment()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for _ in range(2):
        ours = run([sys.executable, "-m", "conhook", "app"], cwd=tmp_path, env=env)
        assert (ours.returncode, ours.stdout, ours.stderr) == (0, "result 42\n", "")
    assert list((tmp_path / "app" / "__pycache__").glob("__main__.*-conhook.pyc"))


@pytest.mark.parametrize("kind", ["directory", "zipapp"])
def test_archive_without_a_main_module_fails_like_plain_python(tmp_path, kind):
    write(tmp_path, {"app/other.py": "print('no')\n"})
    target = "app"
    if kind == "zipapp":
        shutil.make_archive(str(tmp_path / "app"), "zip", tmp_path / "app")
        target = "app.zip"
    plain, ours = both(target, cwd=tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert "can't find '__main__' module" in ours.stderr


# -- stdin -------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["-"], ["-", "x", "y"], []], ids=["dash", "dash-args", "pipe"])
def test_stdin_program_matches_plain_python(tmp_path, args):
    plain, ours = both(*args, cwd=tmp_path, stdin=REPORT_LOADER)
    assert report(ours) == report(plain)
    assert report(ours)["argv"] == (args or [""])


@pytest.mark.parametrize("args", [["-"], []], ids=["dash", "pipe"])
def test_stdin_program_of_con_code_runs_and_is_not_the_repl(tmp_path, args):
    ours = run([sys.executable, "-m", "conhook", *args], cwd=tmp_path, stdin=CON_PROGRAM)
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "result 42\n", "")


def test_stdin_program_error_matches_plain_python(tmp_path):
    program = "import sys\nprint('before')\nraise ValueError('from stdin')\n"
    plain, ours = both("-", cwd=tmp_path, stdin=program)
    assert (ours.returncode, ours.stdout, ours.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert 'File "<stdin>", line 3' in ours.stderr


def test_dash_i_runs_the_repl_on_a_pipe(tmp_path):
    ours = run([sys.executable, "-m", "conhook", "-i"], cwd=tmp_path, stdin="x = con.sleep@(0)\nprint(6 * 7)\n")
    assert ours.returncode == 0, ours.stderr
    assert "42" in ours.stdout
    assert "REPL" in ours.stdout + ours.stderr  # the banner: the REPL, not a program


def test_dash_i_with_a_program_is_refused_with_the_remedy(tmp_path):
    ours = con("-i", "prog.py", cwd=tmp_path)
    assert ours.returncode == 2
    assert "-i takes no program" in ours.stderr


# -- --version and the console script ---------------------------------------------------

@pytest.mark.parametrize("option", ["--version", "-V"])
def test_version(tmp_path, option):
    ours = con(option, cwd=tmp_path)
    assert ours.returncode == 0
    assert ours.stdout == f"conhook {conhook.__version__} (Python {sys.version.split()[0]})\n"


CONSOLE_SCRIPT = shutil.which("conhook", path=os.path.dirname(sys.executable))


@pytest.mark.skipif(CONSOLE_SCRIPT is None, reason="conhook is not installed beside this python "
                    "(pip install -e . creates the console script)")
def test_console_script_is_python_dash_m_conhook(tmp_path):
    write(tmp_path, {"app/report.py": REPORT, "prog.py": CON_PROGRAM})
    for args in (["app/report.py", "a"], ["-c", REPORT, "b"]):
        script = run([CONSOLE_SCRIPT, *args], cwd=tmp_path)
        assert report(script) == report(con(*args, cwd=tmp_path))
    script = run([CONSOLE_SCRIPT, "prog.py"], cwd=tmp_path)
    assert (script.returncode, script.stdout) == (0, "result 42\n")
    assert run([CONSOLE_SCRIPT, "--version"], cwd=tmp_path).stdout == con("--version", cwd=tmp_path).stdout


# -- multiprocessing ---------------------------------------------------------------

MULTIPROCESSING = """\
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

import con

def double(x):
    sibling con.sleep@(0)          # (plain Python cannot compile this line)
    con.sleep@(0)
    return 2 * x

def work(x):
    return con.bootstrap(double, x)

def report_exit(x):
    if con.bootstrap(double, x) != 2 * x:
        sys.exit(3)

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    with context.Pool(2) as pool:
        print("pool", pool.map_async(work, [1, 2, 3]).get(timeout=60))
    process = context.Process(target=report_exit, args=(5,))
    process.start()
    process.join(60)
    print("process", process.exitcode)
    with ProcessPoolExecutor(2, mp_context=context) as executor:
        print("executor", list(executor.map(work, [4, 5], timeout=60)))
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_multiprocessing_children_of_a_script_run_con_code(tmp_path, method):
    write(tmp_path, {"prog.py": MULTIPROCESSING})
    ours = con("prog.py", method, cwd=tmp_path)
    assert ours.stdout == "pool [2, 4, 6]\nprocess 0\nexecutor [8, 10]\n", ours.stderr
    assert ours.returncode == 0


def test_multiprocessing_children_of_a_module_run_con_code(tmp_path):
    write(tmp_path, {"pkg/__init__.py": "", "pkg/prog.py": MULTIPROCESSING})
    ours = con("-m", "pkg.prog", "spawn", cwd=tmp_path)
    assert ours.stdout == "pool [2, 4, 6]\nprocess 0\nexecutor [8, 10]\n", ours.stderr
    assert ours.returncode == 0


def test_multiprocessing_child_sees_main_as_plain_python_sets_it(tmp_path):
    """The child's ``__mp_main__``: the globals runpy.run_path gives a script, compared with
    what plain python's child gets for the same (plain) script."""
    program = """\
        import json, multiprocessing, sys

        def globals_of_main(_):
            g = sys.modules["__main__"].__dict__
            keys = ("__name__", "__file__", "__package__", "__cached__", "__loader__", "__spec__")
            return json.dumps({k: repr(g.get(k, "<unset>")) for k in keys} | {"argv": sys.argv[1:],
                              "same": sys.modules["__mp_main__"] is sys.modules["__main__"]})

        if __name__ == "__main__":
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                print(pool.map(globals_of_main, [0])[0])
        """
    write(tmp_path, {"prog.py": program})
    plain = python("prog.py", "a", cwd=tmp_path)
    ours = con("prog.py", "a", cwd=tmp_path)
    assert report(ours) == report(plain)
