"""The runner's warm start (issue 13, item 8): the main script's code is cached as an imported
module's is (``_import_hook.compile_cached``, the hook's own cache), so a second run imports
nothing of the compiler; an edited script is compiled again.  Nothing here is timed: the speed
is ``tools/bench_startup.py``'s.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_runner import environment

# What the runner may import of the compiler on a warm start: the package (its docstring) and
# the version flags (which import only ``sys`` and the floor).
CHEAP = {"conhook._compiler", "conhook._compiler.versions"}

PROGRAM = """\
import sys
import con

def main():
    con.sleep@(0)
    print(json.dumps([MESSAGE, sorted(m for m in sys.modules
                                       if m.startswith(("conhook._compiler", "bytecode")))]))

import json
con.bootstrap(main)
"""


def run(script, cwd, *args) -> tuple[str, list[str]]:
    env = environment()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # (the cache is what is tested)
    done = subprocess.run([sys.executable, "-m", "conhook", script, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    message, modules = json.loads(done.stdout)
    return message, modules


def write(path, message: str) -> None:
    path.write_text(PROGRAM.replace("MESSAGE", repr(message)), encoding="utf-8")


def test_a_warm_start_imports_nothing_of_the_compiler(tmp_path):
    write(tmp_path / "prog.py", "one")
    message, cold = run("prog.py", tmp_path)
    assert message == "one"
    assert "conhook._compiler.pipeline" in cold  # (the first run compiles: the check can see it)
    message, warm = run("prog.py", tmp_path)
    assert message == "one"
    assert set(warm) <= CHEAP, f"a warm start imported {sorted(set(warm) - CHEAP)}"
    assert list((tmp_path / "__pycache__").glob("prog.*-conhook.pyc"))


@pytest.mark.parametrize("edit", ["size", "mtime"])
def test_an_edited_script_is_compiled_again(tmp_path, edit):
    script = tmp_path / "prog.py"
    write(script, "one")
    assert run("prog.py", tmp_path)[0] == "one"
    before = script.stat()
    write(script, "three" if edit == "size" else "two")  # ("two": the same size as "one")
    if edit == "mtime":
        assert script.stat().st_size == before.st_size
        os.utime(script, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    message, modules = run("prog.py", tmp_path)
    assert message == ("three" if edit == "size" else "two")
    assert "conhook._compiler.pipeline" in modules
    assert run("prog.py", tmp_path) == (message, [m for m in modules if m in CHEAP])


def test_cached_code_names_the_script_as_it_is_run_this_time(tmp_path):
    """A traceback from cached code shows the path given on this run, as CPython's .pyc does."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "prog.py").write_text("import con\nraise ValueError('here')\n")
    env = environment()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for spelling in ("app/prog.py", "app/../app/prog.py"):
        done = subprocess.run([sys.executable, "-m", "conhook", spelling], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert f'File "{tmp_path / spelling}", line 2, in <module>' in done.stderr, done.stderr


# Modules a con program need not import: the compiler's (ast, dis, inspect, dataclasses, typing)
# and those only a failure's explanation or a module's opt-in scan needs (re, tokenize, linecache).
HEAVY = ("re", "tokenize", "linecache", "ast", "dis", "inspect", "dataclasses", "typing")

LEAN = """\
import sys
import con

def main():
    con.sleep@(0)
    print(sorted(name for name in HEAVY if name in sys.modules))

con.bootstrap(main)
"""


def test_a_warm_start_imports_no_heavy_module(tmp_path):
    """Under ``python -S``: what the environment's ``.pth`` files import (``re``, often) is not
    the runner's doing."""
    import bytecode
    (tmp_path / "prog.py").write_text(LEAN.replace("HEAVY", repr(HEAVY)), encoding="utf-8")
    env = environment()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] += os.pathsep + os.path.dirname(os.path.dirname(bytecode.__file__))
    for _ in range(2):  # (the second run is the warm one)
        done = subprocess.run([sys.executable, "-S", "-m", "conhook", "prog.py"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"
