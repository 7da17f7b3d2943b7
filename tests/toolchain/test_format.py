"""python -m conhook format: the real formatters (ruff format, black) on con code, through the
format view, never change what the code means."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conhook._toolchain import view

from .helpers import ROOT, con_programs, con_tree, conhook, tool



# black's run is the same on every Python; reading its output back is checked on each with ruff's.
FORMATTERS = ["ruff", pytest.param("black", marks=pytest.mark.version_independent)]


@pytest.mark.parametrize("formatter", FORMATTERS)
def test_round_trip_of_every_con_program(tmp_path, formatter):
    """Every con program of the repository, formatted (one formatter run over all of them),
    is the same program: the compiler's tree is unchanged; and formatting did something."""
    executable = tool(formatter)
    markers = {}
    for number, (name, source) in enumerate(con_programs().items()):
        text, markers[name] = view.format_view(source, name)
        (tmp_path / f"p{number}.py").write_text(text, encoding="utf-8")
    command = [executable, "format", "-q", str(tmp_path)] if formatter == "ruff" else \
        [executable, "-q", "--fast", str(tmp_path)]
    subprocess.run(command, check=True, cwd=tmp_path)
    reformatted = 0
    for number, (name, source) in enumerate(con_programs().items()):
        formatted = view.from_format_view((tmp_path / f"p{number}.py").read_text(encoding="utf-8"),
                                          markers[name], name)
        assert con_tree(formatted, name) == con_tree(source, name), name
        reformatted += formatted != source
    assert len(con_programs()) > 100 and reformatted > len(con_programs()) // 2


SOURCE = """\
import con
def main( x ):
    y=con.sleep@( x )
    sibling  worker@(y,  1)
    return [a.m@(1).n@(2) for a in x]
"""


@pytest.mark.parametrize("formatter", FORMATTERS)
def test_format_command_keeps_con_syntax(tmp_path, formatter):
    tool(formatter)
    path = tmp_path / "prog.py"
    path.write_text(SOURCE, encoding="utf-8")
    check = conhook("format", "--check", "--formatter", formatter, "prog.py", cwd=tmp_path)
    assert check.returncode == 1 and "prog.py" in check.stdout + check.stderr
    if formatter == "ruff":  # (black is slow to start: its runs are kept few)
        diff = conhook("format", "--diff", "--formatter", formatter, "prog.py", cwd=tmp_path)
        assert "+    y = con.sleep@(x)" in diff.stdout and path.read_text() == SOURCE
    done = conhook("format", "--formatter", formatter, "prog.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    formatted = path.read_text(encoding="utf-8")
    assert "y = con.sleep@(x)" in formatted and "    sibling worker@(y, 1)" in formatted
    assert con_tree(formatted) == con_tree(SOURCE)
    if formatter == "ruff":
        again = conhook("format", "--check", "--formatter", formatter, "prog.py", cwd=tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr


def test_format_honours_the_projects_configuration(tmp_path):
    """ruff reads the file's pyproject.toml (found from --stdin-filename): here, single quotes."""
    tool("ruff")
    (tmp_path / "pyproject.toml").write_text("[tool.ruff.format]\nquote-style = 'single'\n")
    (tmp_path / "pkg").mkdir()
    path = tmp_path / "pkg" / "prog.py"
    path.write_text('import con\ndef f():\n    return g@("x")\n')
    done = conhook("format", "--formatter", "ruff", "pkg", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "return g@('x')" in path.read_text()


def test_format_keeps_the_files_encoding_and_line_ends(tmp_path):
    tool("ruff")
    path = tmp_path / "prog.py"
    path.write_bytes("# -*- coding: latin-1 -*-\r\nimport con\r\ndef f():\r\n    return g@('é')\r\n".encode("latin-1"))
    done = conhook("format", "--formatter", "ruff", "prog.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == ('# -*- coding: latin-1 -*-\r\nimport con\r\n\r\n\r\ndef f():\r\n'
                                 '    return g@("é")\r\n').encode("latin-1")


def test_format_from_stdin_as_editors_call_it(tmp_path):
    tool("ruff")
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length = 40\n")
    source = "import con\ndef f():\n    sibling   g@(first_argument, second_argument)\n"
    done = subprocess.run([sys.executable, "-m", "conhook", "format", "--formatter", "ruff",
                           "--stdin-filename", str(tmp_path / "prog.py"), "-"],
                          input=source, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "    sibling g@(\n        first_argument, second_argument\n    )\n" in done.stdout
    assert con_tree(done.stdout) == con_tree(source)
