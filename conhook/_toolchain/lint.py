"""``python -m conhook lint [RUFF OPTIONS] PATHS...``: ruff check on con files.

Each file's typing view (``view.typing_view``: ``f@(x)`` as ``(await f(x))`` in an
``async def``, ``sibling f@(x)`` as a call of ``f``) goes to ``ruff check`` on stdin with
``--stdin-filename``, so ruff applies the user's configuration to it as to the file itself,
and every diagnostic is moved back to the con file's line and column.  Line lengths (E501)
are judged on the con text, which the view lengthens.

Output is ruff's ``concise`` format (``file:line:col: CODE message``) unless an
``--output-format=`` is given (``json`` is mapped field by field); one summary line ends
it, and the exit status is ruff's: 0 clean, 1 diagnostics, 2 an error.  Options take their
value after ``=``; ``--fix`` is refused (a fix is an edit of the view, not of the file).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from . import files, view

USAGE = "usage: python -m conhook lint [RUFF OPTIONS as --option=value] PATHS...\n"
_LOCATION = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$")
_LINE_TOO_LONG = re.compile(r"^E501 Line too long \((\d+) > (\d+)\)")


def _line_length(code: str, message: str, con_view: view.View, line: int):
    """An E501 diagnostic of an edited line judged on the con text: None if the line fits,
    else its message and 1-based columns (where the line passes the limit, and its end)."""
    limit = int(_LINE_TOO_LONG.match("E501 " + message).group(2))
    width = len(con_view.columns.original_lines[line - 1].rstrip("\r\n"))
    if width <= limit:
        return None
    return re.sub(r"\(\d+ >", f"({width} >", message, count=1), limit + 1, width + 1


def _map_text(output: str, path: str, con_view: view.View) -> list[str]:
    found = []
    for text in output.splitlines():
        match = _LOCATION.match(text)
        if not match:
            continue  # ruff's summary lines: one is written for all files
        line, col = int(match["line"]), int(match["col"])
        if line > con_view.lines:
            continue
        code, _, message = match["rest"].partition(" ")
        if code == "E501" and line in con_view.columns.edits:
            judged = _line_length(code, message, con_view, line)
            if judged is None:
                continue
            message, col, _ = judged
        else:
            col = con_view.original_col(line, col - 1) + 1
        found.append(f"{path}:{line}:{col}: {code} {message}\n")
    return found


def _map_json(output: str, path: str, con_view: view.View) -> list[dict]:
    found = []
    for item in json.loads(output or "[]"):
        start, end = item["location"], item["end_location"]
        if start["row"] > con_view.lines:
            continue
        if item.get("code") == "E501" and start["row"] in con_view.columns.edits:
            judged = _line_length("E501", item["message"], con_view, start["row"])
            if judged is None:
                continue
            item["message"], start["column"], end["column"] = judged
        else:
            for place in (start, end):
                if place["row"] <= con_view.lines:
                    place["column"] = con_view.original_col(place["row"], place["column"] - 1) + 1
        item.update(filename=os.path.abspath(path), fix=None)
        found.append(item)
    return found


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return 0
    options = [arg for arg in argv if arg.startswith("-") and arg != "-"]
    paths = [arg for arg in argv if arg not in options]
    if not paths or any(arg in ("--fix", "--unsafe-fixes", "--watch", "-w") for arg in options):
        sys.stderr.write(USAGE)
        return 2
    ruff = files.find_tool("ruff")
    if ruff is None:
        return files.missing_tool("lint", "ruff")
    output_format = next((o.partition("=")[2] for o in options if o.startswith("--output-format=")), None)
    if output_format is None:
        options.append("--output-format=concise")
    lines: list[str] = []
    items: list[dict] = []
    status = 0
    for path in files.python_files(paths):
        try:
            con_view = view.typing_view(files.read_source(path), path)
        except (OSError, SyntaxError, view.ViewError) as error:
            sys.stderr.write(f"error: Failed to lint {path}: {error}\n")
            status = 2
            continue
        done = subprocess.run([ruff, "check", *options, "--stdin-filename", os.path.abspath(path), "-"],
                              input=con_view.text.encode("utf-8"), capture_output=True)
        if done.returncode not in (0, 1):
            sys.stderr.write(done.stderr.decode("utf-8", "replace"))
            status = 2
            continue
        output = done.stdout.decode("utf-8", "replace")
        if output_format == "json":
            items += _map_json(output, path, con_view)
        else:
            lines += _map_text(output, path, con_view)
    if output_format == "json":
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
    else:
        sys.stdout.writelines(lines)
        count = len(lines)
        sys.stdout.write(f"Found {count} error{'' if count == 1 else 's'}.\n" if count else "All checks passed!\n")
    return status or (1 if lines or items else 0)
