"""What the toolchain's commands share: the files they are given, and the tools they run.

A path given is a file (taken whatever its name) or a folder (its ``.py`` files, as the tools
themselves walk one, leaving out hidden folders, ``__pycache__`` and virtual environments).
A tool is found beside the running Python first (the virtual environment's ``bin``), then
on ``PATH``.
"""
from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tokenize

from .._compiler.pipeline import decode_source

_SKIPPED_FOLDERS = {"__pycache__", "node_modules", "venv", "build", "dist"}


def python_files(paths: list[str]) -> list[str]:
    found = []
    for path in paths:
        if not os.path.isdir(path):
            found.append(path)
            continue
        for folder, folders, names in os.walk(path):
            folders[:] = sorted(d for d in folders if not d.startswith(".") and d not in _SKIPPED_FOLDERS
                                and not os.path.exists(os.path.join(folder, d, "pyvenv.cfg")))
            found.extend(os.path.join(folder, name) for name in sorted(names) if name.endswith(".py"))
    return found


def read_source(path: str) -> str:
    """The text of ``path``, decoded as Python decodes source (PEP 263)."""
    with open(path, "rb") as file:
        return decode_source(file.read(), path)


def find_tool(*names: str) -> str | None:
    """The path of the first of ``names`` installed beside the running Python or on PATH."""
    folders = [sysconfig.get_path("scripts"), os.path.dirname(sys.executable)]
    for name in names:
        for folder in folders:
            candidate = os.path.join(folder, name)
            if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
                return candidate
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_tool(command: str, names: str) -> int:
    sys.stderr.write(f"python -m conhook {command}: {names} is not installed; "
                     f"install it (pip install {names.split(' or ')[0]}) in this environment\n")
    return 2


def write_source(path: str, text: str) -> None:
    """Write ``text`` (``\\n`` line ends) over the source file ``path`` in the file's own
    encoding (its coding cookie or BOM) and line ends (``\\r\\n`` if its first line has them)."""
    with open(path, "rb") as file:
        encoding, lines = tokenize.detect_encoding(file.readline)
    newline = "\r\n" if lines and lines[0].endswith(b"\r\n") else "\n"
    with open(path, "w", encoding=encoding, newline=newline) as file:
        file.write(text)
