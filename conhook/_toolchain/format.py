"""``python -m conhook format [--check] [--diff] [--formatter ruff|black] PATHS...``

Formats con files with the project's formatter (ruff format if installed, else black) and
never changes what the code means: the formatter formats each file's format view
(``view.format_view``: ``f@(x)`` stays tight, ``sibling f@(x)`` stays a statement), fed on
stdin with ``--stdin-filename`` from the file's folder, so it finds and honours the user's
configuration as it does for a file of its own.  A file whose formatted view cannot be
turned back into the same con code is left as it was and counted as an error.

``-`` formats standard input to standard output, as editors call a formatter
(``--stdin-filename`` says where the text belongs, for the configuration).

Messages, ``--check``/``--diff`` and exit statuses are the formatter's own words and
numbers: 0 done, 1 a file would be reformatted (``--check``; ruff: ``--diff`` too), and
for a file that could not be formatted 2 (ruff) or 123 (black).
"""
from __future__ import annotations

import datetime
import difflib
import os
import subprocess
import sys

from . import files, view

USAGE = ("usage: python -m conhook format [--check] [--diff] [--formatter ruff|black] PATHS...\n"
         "       python -m conhook format [--formatter ruff|black] [--stdin-filename PATH] -\n")


def _plural(count: int, text: str) -> str:
    return f"{count} file{'' if count == 1 else 's'} {text}"


class _Ruff:
    name, error_status = "ruff", 2

    def __init__(self, executable, check, diff):
        self.executable, self.check, self.diff = executable, check, diff

    def command(self, path):
        return [self.executable, "format", "--stdin-filename", path, "-"]

    def header(self, path):
        return path, path

    def changed(self, path):
        if self.check and not self.diff:
            sys.stdout.write(f"Would reformat: {path}\n")

    def failed(self, path, message):
        sys.stderr.write(f"error: Failed to format {path}: {message}\n")

    def summary(self, changed, unchanged, failed):
        if self.check or self.diff:
            parts = [_plural(changed, "would be reformatted")] if changed else []
            parts += [_plural(unchanged, "already formatted")] if unchanged else []
            (sys.stderr if self.diff else sys.stdout).write(", ".join(parts) + "\n")
        else:
            parts = [_plural(changed, "reformatted")] if changed else []
            parts += [_plural(unchanged, "left unchanged")] if unchanged else []
            sys.stdout.write(", ".join(parts) + "\n")
        if failed:
            return self.error_status
        return 1 if changed and (self.check or self.diff) else 0


class _Black(_Ruff):
    name, error_status = "black", 123

    def command(self, path):
        return [self.executable, "-q", "--stdin-filename", path, "-"]

    def header(self, path):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
        return f"{path}\t{now}", f"{path}\t{now}"

    def changed(self, path):
        verb = "would reformat" if self.check or self.diff else "reformatted"
        sys.stderr.write(f"{verb} {path}\n")

    def failed(self, path, message):
        sys.stderr.write(f"error: cannot format {path}: {message}\n")

    def summary(self, changed, unchanged, failed):
        would = self.check or self.diff
        bad = failed or (self.check and changed)
        sys.stderr.write("\nOh no! 💥 💔 💥\n" if bad else "\nAll done! ✨ 🍰 ✨\n")
        parts = [_plural(changed, "would be reformatted" if would else "reformatted")] if changed else []
        parts += [_plural(unchanged, "would be left unchanged" if would else "left unchanged")] if unchanged else []
        parts += [_plural(failed, "would fail to reformat" if would else "failed to reformat")] if failed else []
        sys.stderr.write(", ".join(parts) + ".\n")
        return self.error_status if failed else (1 if self.check and changed else 0)


def format_source(source: str, path: str, command: list[str]) -> str:
    """``source``, formatted by ``command`` (a formatter reading stdin) through the format view."""
    text, marker = view.format_view(source, path)
    done = subprocess.run(command, input=text.encode("utf-8"), capture_output=True,
                          cwd=os.path.dirname(os.path.abspath(path)) or None)
    if done.returncode:
        message = done.stderr.decode("utf-8", "replace").strip().removeprefix("error: ")
        raise view.ViewError(message or f"exit status {done.returncode}")
    formatted = done.stdout.decode("utf-8")
    if not formatted and text:  # excluded by the formatter's own configuration
        return source
    return view.from_format_view(formatted, marker, path)


def _format_stdin(tool, filename: str, stdin_named: bool = True) -> int:
    """``-``: standard input to standard output, as editors call a formatter; ``filename``
    (``--stdin-filename``) places it for the formatter's configuration."""
    source = sys.stdin.read()
    try:
        formatted = format_source(source, os.path.abspath(filename), tool.command(os.path.abspath(filename)))
    except (SyntaxError, view.ViewError) as error:
        tool.failed(filename if stdin_named else "-", error)
        return tool.error_status
    sys.stdout.write(formatted)
    return 0


def main(argv: list[str]) -> int:
    check = diff = False
    choice = stdin_filename = None
    paths = []
    args = iter(argv)
    for arg in args:
        if arg == "--check":
            check = True
        elif arg == "--diff":
            diff = True
        elif arg == "--formatter" or arg.startswith("--formatter="):
            choice = arg.partition("=")[2] or next(args, "")
        elif arg == "--stdin-filename" or arg.startswith("--stdin-filename="):
            stdin_filename = arg.partition("=")[2] or next(args, "")
        elif arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        elif arg.startswith("-") and arg != "-":
            sys.stderr.write(f"unknown option {arg!r}\n" + USAGE)
            return 2
        else:
            paths.append(arg)
    if choice not in (None, "ruff", "black") or not paths:
        sys.stderr.write(USAGE)
        return 2
    names = [choice] if choice else ["ruff", "black"]
    executable = next(filter(None, (files.find_tool(name) for name in names)), None)
    if executable is None:
        return files.missing_tool("format", " or ".join(names))
    tool = (_Ruff if os.path.basename(executable).startswith("ruff") else _Black)(executable, check, diff)
    if paths == ["-"]:
        return _format_stdin(tool, stdin_filename or os.path.join(os.getcwd(), "stdin.py"), bool(stdin_filename))
    changed = unchanged = failed = 0
    for path in files.python_files(paths):
        try:
            source = files.read_source(path)
            formatted = format_source(source, os.path.abspath(path), tool.command(os.path.abspath(path)))
        except (OSError, SyntaxError, view.ViewError) as error:
            tool.failed(path, error)
            failed += 1
            continue
        if formatted == source:
            unchanged += 1
            continue
        changed += 1
        tool.changed(path)
        if diff:
            old, new = tool.header(path)
            sys.stdout.writelines(difflib.unified_diff(source.splitlines(True), formatted.splitlines(True),
                                                       old, new))
            sys.stdout.write("\n" if tool.name == "ruff" else "")
        elif not check:
            files.write_source(path, formatted)
    return tool.summary(changed, unchanged, failed)
