"""What the toolchain tests share: the repository's con code, and running a command."""
from __future__ import annotations

import ast
import functools
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from conhook._compiler import pipeline
from conhook._toolchain import files

ROOT = pathlib.Path(__file__).resolve().parents[2]
_CODE_BLOCK = re.compile(r"```python\n((?:(?!```).)*)```", re.S)


@functools.cache
def con_programs() -> dict[str, str]:
    """Every con program of the repository: the files whose con syntax the compiler rewrites
    (samples/, tests/), and the python examples of docs/*.md that hold con syntax."""
    found = {}
    candidates = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))
                  for folder in ("samples", "tests") for p in sorted((ROOT / folder).rglob("*.py"))]
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for i, block in enumerate(_CODE_BLOCK.findall(doc.read_text(encoding="utf-8"))):
            candidates.append((f"docs/{doc.stem}-{i}.py", block))
    for path in sorted((ROOT / "tests").rglob("*.py")):  # programs the tests write out and run
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except SyntaxError:
            continue
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        candidates += [(f"{path.relative_to(ROOT)}-{i}.py", textwrap.dedent(text))
                       for i, text in enumerate(strings) if "@(" in text and text.count("\n") > 2]
    for name, source in candidates:
        try:
            if pipeline.rewrite_tokens(source, name).changed:
                pipeline.compile_con(source, name, toplevel=True)  # (%%con examples: top-level calls)
                found[name] = source
        except SyntaxError:
            continue  # a deliberate mistake, or a fragment
    return found


def con_tree(source: str, name: str = "<con>") -> str:
    """What the code means: the compiler's tree of it, without positions, docstrings'
    indentation normalised (formatters re-indent docstrings), and without the source text a
    t-string keeps of each interpolation (3.14+: a formatter re-lays that text out in plain
    Python too, as it does the expression itself)."""
    tree, _ = pipeline.parse_con(source, name)
    for node in ast.walk(tree):
        if type(node).__name__ == "Interpolation":
            node.str = None
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0].value.value = " ".join(body[0].value.value.split())
    return ast.dump(tree)


def tool(name: str) -> str:
    found = files.find_tool(name)
    if found is None:
        pytest.skip(f"{name} is not installed (it is in the test extra)")
    return found


def conhook(*args, cwd, env=None) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env, PYTHONPATH=str(ROOT))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return subprocess.run([sys.executable, "-m", "conhook", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def column_of(source: str, line: int, text: str) -> int:
    """The 1-based column where ``text`` starts on ``line`` of ``source``."""
    return source.splitlines()[line - 1].index(text) + 1


def line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)
