"""The coverage.py plugin (``conhook/coverage.py``, docs/coverage.md), run for real.

Each program runs in a subprocess under ``coverage run -m conhook`` with the plugin enabled, and
is checked against what does not depend on the plugin: the line events ``sys.settrace`` sees
in the same program, and coverage's own report of the program's plain-Python twin (the same
text with ``sibling f@(x)`` made ``f(x)`` and ``f@(x)`` made ``f(x)``, every line where it was).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

coverage = pytest.importorskip("coverage", reason="coverage is in the test extra")
pytestmark = pytest.mark.skipif(
    not __import__("coverage.core").core.CTRACER_FILE,
    reason="coverage's C tracer is not built for this Python, and file tracer plugins need it")

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "[run]\nplugins = conhook.coverage\nbranch = True\nsource = .\n"

# Threads in loops, under an `if`, in nested functions; a function whose `if` around a
# `sibling` is its last statement; one that starts threads and fails; an early return.
PROGRAM = '''\
from con import bootstrap, sleep, timeout


def child(n, out):
    sleep@(0)
    out.append(n)


def last_if(flag, out):
    if flag:
        sibling child@(1, out)


def last_if_else(flag, out):
    if flag:
        sibling child@(2, out)
    else:
        out.append(0)


def loop(n, out):
    for i in range(n):
        if i % 2:
            sibling child@(i, out)
        else:
            out.append(-i)
    return len(out)


def nested(a, b, out):
    sibling child@(3, out)
    if a:
        if b:
            sibling child@(4, out)


def failing(out):
    sibling child@(5, out)
    raise ValueError(len(out))


def early(x, out):
    sibling child@(6, out)
    if x:
        return 1
    out.append(7)


def outer(out):
    def inner(k):
        sibling child@(k, out)
        sleep@(0)
    sibling inner@(8)
    inner@(9)


def logged(function):
    return function


@logged
def decorated(out):
    with timeout(60):
        sibling child@(10, out)


def main():
    out = []
    decorated@(out)
    last_if@(True, out)
    last_if_else@(True, out)
    last_if_else@(False, out)
    loop@(4, out)
    nested@(True, False, out)
    try:
        failing@(out)
    except ValueError:
        out.append(-1)
    early@(False, out)
    outer@(out)
    print(sorted(out))


bootstrap(main)
'''


def line_of(text: str, source: str = PROGRAM) -> int:
    return next(n for n, line in enumerate(source.splitlines(), 1) if line.strip() == text)


def plain_twin(source: str) -> str:
    """The program as plain Python, every statement on its line: threads run at once."""
    lines = source.splitlines(keepends=True)
    lines[0] = ("import contextlib; bootstrap, sleep, timeout = "
                "(lambda main: main()), (lambda s: None), (lambda s: contextlib.nullcontext())\n")
    return re.sub(r"sibling (\w+)@\(", r"\1(", "".join(lines)).replace("@(", "(")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def json_report(directory: Path, name: str, *run_args: str) -> dict:
    """coverage's JSON report of ``name`` run as ``run_args`` in ``directory``."""
    (directory / ".coveragerc").write_text(CONFIG)
    run("-m", "coverage", "run", *run_args, cwd=directory)
    run("-m", "coverage", "json", "-o", "coverage.json", cwd=directory)
    files = json.loads((directory / "coverage.json").read_text())["files"]
    return files[name]


def comparable(report: dict) -> dict:
    """What a file's report says about its lines and branches."""
    keys = ("executed_lines", "missing_lines", "excluded_lines", "executed_branches", "missing_branches")
    summary = {k: v for k, v in report["summary"].items() if k != "percent_covered_display"}
    return {"summary": summary, **{k: report[k] for k in keys}}


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> tuple[Path, dict]:
    directory = tmp_path_factory.mktemp("measured")
    (directory / "prog.py").write_text(PROGRAM)
    (directory / "unrun.py").write_text("import con\n\n\ndef f():\n    sibling g@()\n")
    return directory, json_report(directory, "prog.py", "-m", "conhook", "prog.py")


def test_the_executed_lines_are_those_settrace_sees(measured, tmp_path):
    directory, report = measured
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "trace.py").write_text(textwrap.dedent("""\
        import os, runpy, sys
        seen = set()
        def tracer(frame, event, arg):
            if frame.f_code.co_filename.endswith("prog.py"):
                if event == "line":
                    seen.add(frame.f_lineno)
                return tracer
        sys.argv = ["conhook", "prog.py"]
        sys.settrace(tracer)
        try:
            runpy.run_module("conhook", run_name="__main__")
        except SystemExit:
            pass
        sys.settrace(None)
        print(sorted(seen))
    """))
    seen = json.loads(run("trace.py", cwd=tmp_path).stdout.splitlines()[-1])
    sibling_lines = {n for n, text in enumerate(PROGRAM.splitlines(), 1) if text.lstrip().startswith("sibling")}
    assert sibling_lines - set(seen) == {line_of("sibling child@(4, out)")}  # (nested's b is False)
    assert report["executed_lines"] == seen


# PROGRAM, but `early` returns early: the wait for its thread runs at its last line, which
# CPython's tracer then reports as run (docs/coverage.md); coverage must not.
EARLY = PROGRAM.replace("early@(False, out)", "early@(True, out)")


def test_an_early_return_leaves_the_last_statement_missing(tmp_path):
    (tmp_path / "prog.py").write_text(EARLY)
    report = json_report(tmp_path, "prog.py", "-m", "conhook", "prog.py")
    (tmp_path / "prog.py").write_text(plain_twin(EARLY))
    twin = json_report(tmp_path, "prog.py", "prog.py")
    assert comparable(report) == comparable(twin)
    assert line_of("out.append(7)", EARLY) in report["missing_lines"]


def test_lines_and_branches_are_reported_as_the_plain_python_twins(measured, tmp_path):
    directory, report = measured
    (tmp_path / "prog.py").write_text(plain_twin(PROGRAM))
    twin = json_report(tmp_path, "prog.py", "prog.py")
    assert comparable(report) == comparable(twin)
    # Not only equal: the branch of an `if` around a `sibling` that only ran one way is partial.
    if_line = line_of("def last_if(flag, out):") + 1
    assert [if_line, -(if_line - 1)] in report["missing_branches"]
    assert report["summary"]["missing_branches"] > 0


def test_a_con_file_that_never_ran_is_reported(measured):
    directory, _ = measured
    files = json.loads((directory / "coverage.json").read_text())["files"]
    assert files["unrun.py"]["missing_lines"] == [1, 4, 5]


def test_html_and_xml_reports(measured):
    directory, _ = measured
    run("-m", "coverage", "html", "-d", "html", cwd=directory)
    page = next(p for p in (directory / "html").glob("*prog_py.html"))
    text = page.read_text()
    assert '<span class="key">sibling</span>' in text
    run("-m", "coverage", "xml", "-o", "coverage.xml", cwd=directory)
    tree = ElementTree.parse(directory / "coverage.xml")
    classes = {c.get("filename"): c for c in tree.iter("class")}
    lines = {int(line.get("number")): line for line in classes["prog.py"].iter("line")}
    sibling_lines = [n for n, text in enumerate(PROGRAM.splitlines(), 1) if text.lstrip().startswith("sibling")]
    assert all(n in lines for n in sibling_lines)
    if_line = line_of("def last_if(flag, out):") + 1
    assert lines[if_line].get("branch") == "true" and lines[if_line].get("condition-coverage").startswith("50%")


def test_pytest_cov_measures_a_con_module(tmp_path):
    (tmp_path / "threads.py").write_text(textwrap.dedent("""\
        import con


        def double_all(values):
            out = []
            for v in values:
                sibling put@(out, 2 * v)
            return out


        def put(out, value):
            con.sleep@(0)
            out.append(value)
    """))
    (tmp_path / "test_threads.py").write_text(textwrap.dedent("""\
        import con
        import threads


        def test_double_all():
            assert sorted(threads.double_all@([1, 2])) == [2, 4]
    """))
    (tmp_path / ".coveragerc").write_text(CONFIG)
    run("-m", "pytest", "-q", "-p", "pytest_cov", "--cov=.", "--cov-report=json:cov.json", "--cov-report=term",
        "-p", "no:cacheprovider", cwd=tmp_path)
    report = json.loads((tmp_path / "cov.json").read_text())["files"]["threads.py"]
    assert report["missing_lines"] == [] and report["summary"]["missing_branches"] == 0
    assert 7 in report["executed_lines"]  # the sibling line


def test_the_html_source_of_plain_python_is_coverages_own():
    # The HTML report draws a con file from our tokens: for Python they are coverage's.
    from coverage.phystokens import source_token_lines

    from conhook.coverage import _keyword_lines, _token_lines
    for path in sorted((ROOT / "conhook").rglob("*.py")) + sorted((ROOT / "tests").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        assert list(_token_lines(source, _keyword_lines(source))) == list(source_token_lines(source)), path


def test_sibling_and_soft_keywords_are_keywords_in_the_html_source(tmp_path):
    from conhook.coverage import ConFileReporter
    path = tmp_path / "m.py"
    path.write_text("import con\n\ndef f(x):\n    match x:\n        case 1:\n            sibling g@(x)\n")
    lines = list(ConFileReporter(str(path), None).source_token_lines())
    assert [pair for pair in lines[3] + lines[4] + lines[5] if pair[0] == "key"] == [
        ("key", "match"), ("key", "case"), ("key", "sibling")]
