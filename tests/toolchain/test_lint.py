"""python -m conhook lint: ruff on the typing view, every diagnostic at the con file's own
line and column."""
from __future__ import annotations

import json

from .helpers import ROOT, column_of, conhook, line_of, tool

LINT_SOURCE = """\
import con


def main(items):
    total = con.sleep@(undefined_a) + helper@(items).value@(undefined_b)
    sibling helper@(items, undefined_c)
    return total


def helper(items, extra=None):
    return con.sleep@(0)
"""


def test_lint_maps_diagnostics_to_con_columns(tmp_path):
    tool("ruff")
    (tmp_path / "prog.py").write_text(LINT_SOURCE)
    done = conhook("lint", "--select=F821", "prog.py", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    expected = [f"prog.py:{line_of(LINT_SOURCE, name)}:{column_of(LINT_SOURCE, line_of(LINT_SOURCE, name), name)}: "
                f"F821 Undefined name `{name}`" for name in ("undefined_a", "undefined_b", "undefined_c")]
    assert done.stdout.splitlines() == [*expected, "Found 3 errors."]
    as_json = json.loads(conhook("lint", "--select=F821", "--output-format=json", "prog.py", cwd=tmp_path).stdout)
    assert [(d["location"]["row"], d["location"]["column"]) for d in as_json] == \
        [tuple(map(int, line.split(":")[1:3])) for line in expected]


def test_lint_judges_line_length_on_the_con_text(tmp_path):
    """The view lengthens a line ('(await ' ... ')'); E501 is judged on what the user wrote."""
    tool("ruff")
    fits = "def f():\n    return g@(1) + g@(2)  # " + "x" * 52 + "\n"
    assert len(fits.splitlines()[1]) == 80
    (tmp_path / "prog.py").write_text("import con\n\n\n" + fits)
    done = conhook("lint", "--select=E501", "--line-length=80", "prog.py", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == "All checks passed!\n", done.stdout
    (tmp_path / "prog.py").write_text("import con\n\n\n" + fits.replace("# x", "# xx"))
    done = conhook("lint", "--select=E501", "--line-length=80", "prog.py", cwd=tmp_path)
    assert done.stdout.splitlines()[0] == "prog.py:5:81: E501 Line too long (81 > 80)"


def test_the_samples_lint_clean_with_the_projects_configuration():
    """The samples are con files, which a plain ruff run leaves out (pyproject.toml): through
    the typing view, ruff reads them with the project's rules, and finds nothing."""
    tool("ruff")
    done = conhook("lint", "samples", cwd=ROOT)
    assert (done.returncode, done.stdout) == (0, "All checks passed!\n"), done.stdout + done.stderr


def test_a_con_syntax_error_is_reported_with_its_place(tmp_path):
    tool("ruff")
    (tmp_path / "prog.py").write_text("import con\n\n\ndef f():\n    return [sibling g@(1)]\n")
    done = conhook("lint", "prog.py", cwd=tmp_path)
    assert done.returncode == 2
    assert "prog.py:5:13: 'sibling' starts a statement" in done.stderr and "line of its own" in done.stderr


def test_plain_python_that_names_reserved_names_is_linted_as_it_is():
    """conhook's own modules name __con_ markers: without con syntax a file is its own view."""
    tool("ruff")
    done = conhook("lint", "conhook/_runtime/results.py", cwd=ROOT)
    assert (done.returncode, done.stdout) == (0, "All checks passed!\n"), done.stdout + done.stderr
