"""``python -m conhook typecheck [--checker mypy|pyright] [CHECKER OPTIONS] PATHS...``

Runs the user's type checker on the typing view of each con file (``view.typing_view``):
``f@(x)`` has the type of ``await f(x)`` in a coroutine function, ``sibling f@(x)`` is checked
as a call of ``f`` with those arguments.  Every diagnostic is moved back to the con file's
line and column, and the output and exit status are the checker's own.

* mypy reads each view through ``--shadow-file CON_FILE VIEW`` (one run, the user's
  configuration and cache as usual); its lines ``file:line[:col]: ...`` keep the con file's
  name.
* pyright (or basedpyright, which bundles the Node runtime it needs) cannot read a file
  in place of another: the views are written to a temporary folder, in the con files' own
  layout, and the checker runs from the current folder (its configuration is found there);
  the temporary paths in its output (text, or ``--outputjson``) are turned back into the
  con files'.

Checker options take their value after ``=`` (``--python-version=3.12``) or are flags.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

from . import files, view

USAGE = ("usage: python -m conhook typecheck [--checker mypy|pyright] "
         "[CHECKER OPTIONS as --option=value] PATHS...\n")
_MYPY_LINE = re.compile(r"^(?P<path>[^:\n]+?):(?P<line>\d+):(?:(?P<col>\d+):)?"
                        r"(?:(?P<end_line>\d+):(?P<end_col>\d+):)? (?P<rest>.*)$")
_PYRIGHT_LINE = re.compile(r"^(?P<indent>\s*)(?P<path>/[^\n]*?\.pyi?)"
                           r"(?::(?P<line>\d+):(?P<col>\d+)(?P<rest> - .*))?$")


def _views(paths: list[str]) -> dict[str, view.View] | None:
    views = {}
    for path in files.python_files(paths):
        try:
            views[os.path.realpath(path)] = view.typing_view(files.read_source(path), path)
        except (OSError, SyntaxError, view.ViewError) as error:
            sys.stderr.write(f"{path}: error: {error}\n")
            return None
    return views


def _map(con_view: view.View, line: int, col: int | None) -> int | None:
    """The con text's 1-based column of the view's 1-based ``col`` on ``line``."""
    return None if col is None else con_view.original_col(line, col - 1) + 1


def mypy(options: list[str], paths: list[str], views: dict[str, view.View]) -> int:
    with tempfile.TemporaryDirectory(prefix="conhook-typecheck-") as folder:
        shadows = []
        for number, (path, con_view) in enumerate(views.items()):
            if con_view.columns:
                shadow = os.path.join(folder, f"{number}.py")
                with open(shadow, "w", encoding="utf-8") as file:
                    file.write(con_view.text)
                shadows += ["--shadow-file", path, shadow]
        done = subprocess.run([sys.executable, "-m", "mypy", *options, *shadows, *paths],
                              capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    for text in done.stdout.splitlines(True):
        match = _MYPY_LINE.match(text)
        con_view = views.get(os.path.realpath(match["path"])) if match else None
        if con_view is not None:
            line = int(match["line"])
            if line > con_view.lines:
                continue  # the view's own tail
            col = _map(con_view, line, int(match["col"]) if match["col"] else None)
            place = f"{match['path']}:{line}:" + (f"{col}:" if col is not None else "")
            if match["end_line"]:
                end_line = min(int(match["end_line"]), con_view.lines)
                place += f"{end_line}:{_map(con_view, end_line, int(match['end_col']))}:"
            text = f"{place} {match['rest']}\n"
        sys.stdout.write(text)
    return done.returncode


def pyright(executable: str, options: list[str], views: dict[str, view.View]) -> int:
    root = os.path.commonpath([os.path.dirname(p) for p in views]) if views else os.getcwd()
    with tempfile.TemporaryDirectory(prefix="conhook-typecheck-") as folder:
        originals = {}
        for path, con_view in views.items():
            copy = os.path.join(folder, os.path.relpath(path, root))
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            with open(copy, "w", encoding="utf-8") as file:
                file.write(con_view.text)
            originals[os.path.realpath(copy)] = path
        done = subprocess.run([executable, *options, *originals], capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    if "--outputjson" in options:
        sys.stdout.write(_pyright_json(done.stdout, originals, views))
        return done.returncode
    for text in done.stdout.splitlines(True):
        match = _PYRIGHT_LINE.match(text.rstrip("\n"))
        path = originals.get(os.path.realpath(match["path"])) if match else None
        if path is not None:
            if match["line"] is None:
                text = f"{match['indent']}{path}\n"
            else:
                con_view, line = views[path], int(match["line"])
                if line > con_view.lines:
                    continue
                col = _map(con_view, line, int(match["col"]))
                text = f"{match['indent']}{path}:{line}:{col}{match['rest']}\n"
        sys.stdout.write(text)
    return done.returncode


def _pyright_json(output: str, originals: dict[str, str], views: dict[str, view.View]) -> str:
    """pyright's ``--outputjson`` report with the con files' paths and positions (0-based)."""
    try:
        report = json.loads(output)
    except ValueError:
        return output
    kept = []
    for item in report.get("generalDiagnostics", ()):
        path = originals.get(os.path.realpath(item.get("file", "")))
        if path is not None:
            con_view = views[path]
            if item["range"]["start"]["line"] >= con_view.lines:
                continue
            item["file"] = path
            for place in item["range"].values():
                if place["line"] < con_view.lines:
                    place["character"] = con_view.original_col(place["line"] + 1, place["character"])
        kept.append(item)
    report["generalDiagnostics"] = kept
    return json.dumps(report, indent=4) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return 0
    checker = "mypy"
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--checker" and i + 1 < len(args):
            checker = args.pop(i + 1)
            args.pop(i)
            break
        if arg.startswith("--checker="):
            checker = args.pop(i).partition("=")[2]
            break
    options = [arg for arg in args if arg.startswith("-")]
    paths = [arg for arg in args if not arg.startswith("-")]
    if checker not in ("mypy", "pyright", "basedpyright") or not paths:
        sys.stderr.write(USAGE)
        return 2
    views = _views(paths)
    if views is None:
        return 2
    if checker == "mypy":
        if files.find_tool("mypy") is None:
            return files.missing_tool("typecheck", "mypy")
        return mypy(options, paths, views)
    names = ("basedpyright",) if checker == "basedpyright" else ("pyright", "basedpyright")
    executable = files.find_tool(*names)
    if executable is None:
        return files.missing_tool("typecheck", " or ".join(names))
    return pyright(executable, options, views)
