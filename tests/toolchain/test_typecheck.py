"""python -m conhook typecheck: mypy and pyright (or basedpyright) on the typing view, every
diagnostic at the con file's own line and column; `import con` resolves through con-stubs."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import pytest

from conhook._toolchain.files import find_tool

from .helpers import ROOT, column_of, conhook, line_of, tool

TYPED_SOURCE = """\
import con
from con import Event, sleep


def double(x: int) -> int:
    sleep@(0)
    return x * 2


def main() -> None:
    s: str = double@(3)
    sibling double@("three")
    e: int = Event()
    n: int = double@(2)
    con.sleep@(n)
    print(s, e)
"""


def _diagnostics(output: str, path: str) -> set[tuple[int, int]]:
    """(line, column) of each error that a checker's output gives for ``path``."""
    found = set()
    for line in output.splitlines():
        line = line.strip()
        if line.startswith(path + ":") and "error" in line:
            row, col = line[len(path) + 1:].split(" ")[0].rstrip(":").split(":")[:2]
            found.add((int(row), int(col)))
    return found


def _expected():
    s_line, arg_line, event_line = (line_of(TYPED_SOURCE, text) for text in
                                    ("s: str", '"three"', "e: int"))
    return {(s_line, column_of(TYPED_SOURCE, s_line, "double")),
            (arg_line, column_of(TYPED_SOURCE, arg_line, '"three"')),
            (event_line, column_of(TYPED_SOURCE, event_line, "Event"))}


@pytest.fixture(scope="module")
def typed_project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("typed")
    # pyright's standard mode (basedpyright's default is stricter): the checker's configuration
    # is found from the current folder, as for a run of its own.
    (folder / "pyrightconfig.json").write_text('{"typeCheckingMode": "standard"}')
    (folder / "prog.py").write_text(TYPED_SOURCE)
    return folder


def test_typecheck_with_mypy(typed_project):
    tool("mypy")
    done = conhook("typecheck", "--show-column-numbers", "--no-error-summary",
                   f"--cache-dir={typed_project / '.mypy_cache'}", "prog.py", cwd=typed_project)
    assert done.returncode == 1, done.stderr
    assert _diagnostics(done.stdout, "prog.py") == _expected(), done.stdout
    assert "import-not-found" not in done.stdout and '"int", variable has type "str"' in done.stdout


@pytest.mark.version_independent  # (the view and the mapping back: with mypy, on every Python)
def test_typecheck_with_pyright(typed_project):
    checker = "pyright" if find_tool("pyright") else "basedpyright"
    tool(checker)
    path = str(typed_project / "prog.py")
    done = conhook("typecheck", "--checker", checker, "prog.py", cwd=typed_project)
    assert done.returncode == 1, done.stderr
    assert _diagnostics(done.stdout, path) == _expected(), done.stdout
    assert '"int" is not assignable to declared type "str"' in done.stdout
    assert "conhook-typecheck-" not in done.stdout  # no path of the views is shown


STUB_USER = """\
from con import Event, sleep


def work(x: int) -> None:
    sleep@(x)


def main() -> None:
    sibling work@(1); e: int = Event()
"""


def _stub_expected():
    line = line_of(STUB_USER, "e: int")
    return {(line, column_of(STUB_USER, line, "Event"))}


@pytest.fixture(scope="module")
def wheel_python(tmp_path_factory):
    """A Python whose only conhook is the wheel built from this repository (not editable):
    setuptools builds it from a copy of the package, and it is unpacked, as pip installs a
    wheel, into a virtual environment of its own."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("conhook", "con-stubs"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-c", "import setuptools.build_meta as b, sys; b.build_wheel(sys.argv[1])",
                    str(folder)], cwd=source, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
    python = folder / "venv" / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    with zipfile.ZipFile(next(folder.glob("*.whl"))) as wheel:
        wheel.extractall(site)
    (folder / "user.py").write_text(STUB_USER)
    return python


@pytest.mark.version_independent  # (what the wheel holds and how a checker finds con-stubs)
def test_con_resolves_for_mypy_from_a_wheel(wheel_python, typed_project):
    tool("mypy")
    done = conhook("typecheck", f"--python-executable={wheel_python}", "--show-column-numbers",
                   f"--cache-dir={typed_project / '.mypy_cache'}", "user.py", cwd=wheel_python.parents[2])
    assert _diagnostics(done.stdout, "user.py") == _stub_expected(), done.stdout
    assert '"Event", variable has type "int"' in done.stdout


@pytest.mark.version_independent
def test_con_resolves_for_pyright_from_a_wheel(wheel_python):
    """Through pyright's JSON report (editors read it) and a view whose columns moved."""
    checker = "pyright" if find_tool("pyright") else "basedpyright"
    tool(checker)
    (wheel_python.parents[2] / "pyrightconfig.json").write_text('{"typeCheckingMode": "standard"}')
    done = conhook("typecheck", "--checker", checker, "--outputjson", f"--pythonpath={wheel_python}",
                   "user.py", cwd=wheel_python.parents[2])
    report = json.loads(done.stdout)
    path = str(wheel_python.parents[2] / "user.py")
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    assert {(d["range"]["start"]["line"] + 1, d["range"]["start"]["character"] + 1) for d in errors
            if d["file"] == path} == _stub_expected() and len(errors) == 1, done.stdout
    assert '"Event" is not assignable' in errors[0]["message"]
