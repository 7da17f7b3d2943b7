"""conhook's coverage.py plugin: con modules measured and reported like any other.

Enable it in the coverage configuration (``pyproject.toml``, ``.coveragerc``, ...)::

    [tool.coverage.run]
    plugins = ["conhook.coverage"]

``coverage run -m conhook prog.py``, ``pytest --cov`` and coverage's text, HTML, XML, JSON
and LCOV reports then show every line of a con module, ``sibling`` lines included, and its
branches ([docs/coverage.md](../docs/coverage.md)).

Compiled con code keeps the con file's name and line numbers (docs/spec.md §2.2), so coverage's
tracer records its lines and arcs as it does an ordinary module's, but for the code the compiler
adds to a function that starts threads (``_ConFileTracer``).  Reporting is the larger part:
coverage's own reporter parses the file as Python, and a file with con syntax is not.  So the
plugin claims, as it is first measured (or found unmeasured under ``source``), every file in
which the token layer finds con syntax, and reports it from the token layer's rewrite
(``conhook._compiler.pipeline.rewrite_tokens``): plain Python on the same lines, which
coverage's own parser reads for the statements, the branches and the exclusions, so that a con
module's lines and arcs are judged exactly as the same code written as Python is.  The report
shows the file as the user wrote it.

File tracers need coverage's C tracer.  coverage chooses ``sys.monitoring`` by default from
Python 3.14, where plugins cannot trace: the plugin asks for the C tracer unless the
configuration (or ``COVERAGE_CORE``) names a core itself.
"""
from __future__ import annotations

import ast
import io
import keyword
import tokenize
import types
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import coverage
from coverage.parser import PythonParser
from coverage.python import get_python_source

from ._compiler import pipeline
from ._reserved_names import SCOPE_NAME, SIBLING_MARKER

if TYPE_CHECKING:
    from ._compiler.tokens import TokenRewrite


class ConCoveragePlugin(coverage.CoveragePlugin):
    """Claims the files with con syntax; reports them through their plain-Python rewrite."""

    def __init__(self) -> None:
        self._options = None  # coverage's configuration (anything with get_option)

    def configure(self, config) -> None:
        self._options = config
        if config.get_option("run:core") is None:
            config.set_option("run:core", "ctrace")

    def file_tracer(self, filename: str) -> coverage.FileTracer | None:
        if _rewrite(filename) is None:
            return None
        return _ConFileTracer(filename, bool(self._options and self._options.get_option("run:branch")))

    def find_executable_files(self, src_dir: str) -> Iterator[str]:
        """The con files among those coverage reports as not run (its ``source`` setting)."""
        from coverage.files import find_python_files
        namespaces = bool(self._options and self._options.get_option("report:include_namespace_packages"))
        return (path for path in find_python_files(src_dir, namespaces) if _rewrite(path) is not None)

    def file_reporter(self, filename: str) -> coverage.FileReporter:
        return ConFileReporter(filename, self._options)

    def sys_info(self) -> list[tuple[str, str]]:
        from ._version import __version__
        return [("conhook", __version__)]


def _rewrite(filename: str) -> TokenRewrite | None:
    """The token layer's rewrite of the file, or None if it has no con syntax (or none
    that the token layer accepts: coverage then reports the file as it would)."""
    try:
        rewrite = pipeline.rewrite_tokens(get_python_source(filename), filename)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    return rewrite if rewrite.changed else None


class _ConFileTracer(coverage.FileTracer):
    """Measures a con file as CPython's tracer reports it, less the code the compiler adds.

    A function that starts threads runs code of the compiler's around its body: its prejoin
    scope's start, and the wait for its threads at the end (also run on a failure).  That
    code stands on lines of the user's (the ``def`` line, the body's last statement: the lines
    its tracebacks name), without columns.  Recorded as they come, its line events would add
    arcs the text has not (body, wait, exit) and count the last statement as run when the
    function returned before it.  So the scope's start is not recorded; the way into the rest
    is recorded as an arc to ``wait_line(def line)`` (``ConFileReporter.translate_arcs``
    makes it the exit it stands for, from the last line of the user's that ran), and what the
    frame does after it resumes in that code (the wait suspends while threads run) is not
    recorded at all: coverage's tracer would start it at the body's last line.
    """

    def __init__(self, filename: str, arcs: bool) -> None:
        self._filename = filename
        self._arcs = arcs
        self._added: dict[types.CodeType, tuple[frozenset[int], frozenset[int]]] = {}
        self._in_added_code: set[int] = set()  # ids of frames that entered it from another line

    def source_filename(self) -> str:
        return self._filename

    def _offsets(self, code: types.CodeType) -> tuple[frozenset[int], frozenset[int]]:
        offsets = self._added.get(code)
        if offsets is None:
            offsets = self._added[code] = _added_offsets(code)
        return offsets

    def has_dynamic_source_filename(self) -> bool:
        return self._arcs  # (to see each frame resume)

    def dynamic_source_filename(self, filename: str, frame: types.FrameType) -> str | None:
        if frame.f_lasti not in self._offsets(frame.f_code)[1]:
            self._in_added_code.discard(id(frame))  # (a new frame may have the id of one gone)
        elif id(frame) in self._in_added_code:
            return None  # resumed in the compiler's code, entered from a line of the user's
        return self._filename

    def line_number_range(self, frame: types.FrameType) -> tuple[int, int]:
        start, rest = self._offsets(frame.f_code)
        offset = frame.f_lasti
        if offset in rest and self._arcs:
            self._in_added_code.add(id(frame))
            marker = wait_line(frame.f_code.co_firstlineno)
            return marker, marker
        if offset in start or offset in rest:
            return -1, -1  # (coverage's C tracer then records nothing, and keeps its last line)
        return frame.f_lineno, frame.f_lineno


def wait_line(first_line: int) -> int:
    """The line an arc into the compiler's code of the function at ``first_line`` goes to."""
    return _WAIT_LINES - first_line


def _added_offsets(code: types.CodeType) -> tuple[frozenset[int], frozenset[int]]:
    """The offsets of the instructions the compiler added to ``code`` (a line, no columns;
    CPython's own code has columns wherever a line event can stand): those of the scope's
    start, and the others."""
    if SCOPE_NAME not in code.co_varnames:
        return frozenset(), frozenset()
    added = [2 * index for index, (line, _, column, _) in enumerate(code.co_positions())
             if line is not None and column is None]
    body = next((2 * index for index, (line, _, column, _) in enumerate(code.co_positions())
                 if 2 * index > added[0] and column is not None), 0) if added else 0
    return frozenset(o for o in added if o < body), frozenset(o for o in added if o > body)


# Below every exit (minus the first line) coverage records; the C tracer packs a line in 20
# bits and a sign, so a wait line (this less the first line) must stay within them.
_WAIT_LINES = -(1 << 19)


class ConFileReporter(coverage.FileReporter):
    """A con file's report: its structure (statements, branches, exclusions) as coverage's
    Python parser reads it in the plain-Python rewrite, its text as the user wrote it."""

    def __init__(self, filename: str, options) -> None:
        super().__init__(filename)
        self._options = options
        self._source: str | None = None
        self._view: str | None = None
        self._parser: PythonParser | None = None

    def __repr__(self) -> str:
        return f"<ConFileReporter {self.filename!r}>"

    def source(self) -> str:
        if self._source is None:
            self._source = get_python_source(self.filename)
        return self._source

    @property
    def view(self) -> str:
        """The plain-Python rewrite of the source: the same statements on the same lines."""
        if self._view is None:
            self._view = pipeline.rewrite_tokens(self.source(), self.filename).source
        return self._view

    @property
    def parser(self) -> PythonParser:
        if self._parser is None:
            self._parser = PythonParser(text=self.view, filename=self.filename,
                                        exclude=self._regex("report:exclude_lines"))
            self._parser.parse_source()
        return self._parser

    def _regex(self, *options: str) -> str | None:
        if self._options is None:
            return None
        patterns = [p for option in options for p in (self._options.get_option(option) or ())]
        return "|".join(f"(?:{p})" for p in patterns) or None

    def lines(self) -> set[int]:
        return self.parser.statements

    def excluded_lines(self) -> set[int]:
        return self.parser.excluded

    def multiline_map(self) -> dict[int, int]:
        return self.parser.multiline_map

    def translate_lines(self, lines: Iterable[int]) -> set[int]:
        return self.parser.translate_lines(lines)

    def translate_arcs(self, arcs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
        # An arc into the compiler's code is the function's exit from the line it came from;
        # the arcs out of it are the compiler's (_ConFileTracer).
        arcs = {(start, end - _WAIT_LINES if end < _WAIT_LINES else end) for start, end in arcs
                if start > _WAIT_LINES}
        return self.parser.translate_arcs(arcs)

    def no_branch_lines(self) -> set[int]:
        regex = self._regex("report:partial_branches", "report:partial_branches_always")
        return self.parser.lines_matching(regex) if regex else set()

    def arcs(self) -> set[tuple[int, int]]:
        return self.parser.arcs()

    def exit_counts(self) -> dict[int, int]:
        return self.parser.exit_counts()

    def missing_arc_description(self, start: int, end: int, executed_arcs=None) -> str:
        return self.parser.missing_arc_description(start, end)

    def arc_description(self, start: int, end: int) -> str:
        return self.parser.arc_description(start, end)

    def source_token_lines(self) -> Iterator[list[tuple[str, str]]]:
        return _token_lines(self.source(), _keyword_lines(self.view))

    def code_regions(self):
        from coverage.regions import code_regions
        return code_regions(self.view)

    def code_region_kinds(self) -> list[tuple[str, str]]:
        return [("function", "functions"), ("class", "classes")]


def _keyword_lines(view: str) -> dict[int, set[str]]:
    """Per line, the soft keywords and the ``sibling`` that start a statement there."""
    found: dict[int, set[str]] = {}
    for node in ast.walk(ast.parse(view)):
        if isinstance(node, ast.Match):
            found.setdefault(node.lineno, set()).add("match")
            for case in node.cases:
                found.setdefault(case.pattern.lineno, set()).add("case")
        elif type(node).__name__ == "TypeAlias":  # 3.12+
            found.setdefault(node.lineno, set()).add("type")
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "is_lazy", False):  # 3.15+
            found.setdefault(node.lineno, set()).add("lazy")
        elif isinstance(node, ast.Name) and node.id == SIBLING_MARKER:
            found.setdefault(node.lineno, set()).add("sibling")
    return found


_FSTRING_MIDDLE = getattr(tokenize, "FSTRING_MIDDLE", None)
_NOT_SHOWN = {tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER}


def _token_lines(source: str, keyword_lines: dict[int, set[str]]) -> Iterator[list[tuple[str, str]]]:
    """The source as coverage's HTML report shows it: per line, (class, text) pairs.

    As ``coverage.phystokens.source_token_lines``, which parses the source as Python to find
    its soft keywords: here ``keyword_lines`` tells, per line, the names that are keywords when
    they start it (``match``, ``case``, ``type``, ``lazy`` and ``sibling``).
    """
    source = source.expandtabs(8).replace("\r\n", "\n")
    lines = source.split("\n")
    line: list[tuple[str, str]] = []
    row, col = 1, 0
    for kind, text, (start_row, start_col), end, _ in tokenize.generate_tokens(io.StringIO(source).readline):
        if kind in _NOT_SHOWN:
            continue
        while row < start_row:  # a line the tokens left: a backslash may continue it
            rest = lines[row - 1][col:]
            if rest.strip() == "\\":
                line += [("ws", rest[:len(rest) - len(rest.lstrip())]), ("xx", rest.strip())]
            yield [pair for pair in line if pair[1]]
            line, row, col = [], row + 1, 0
        if start_col > col:
            line.append(("ws", " " * (start_col - col)))
        name = tokenize.tok_name.get(kind, "xx").lower()[:3]
        if kind == _FSTRING_MIDDLE:  # (3.12+: braces come undoubled; coverage doubles them back)
            text = text.replace("{", "{{").replace("}", "}}")
            end = (end[0], (start_col if end[0] == start_row else 0) + len(text.rpartition("\n")[2]))
        if kind == tokenize.NAME and (keyword.iskeyword(text) or (
                text in keyword_lines.get(start_row, ()) and all(pair[0] == "ws" for pair in line))):
            name = "key"
        *ended, last = text.split("\n")
        for part in ended:  # a token over several lines: a string
            yield line + [(name, part)] if part else line
            line = []
        if last:
            line.append((name, last))
        row, col = end
    for _ in range(row, len(lines) + (lines[-1] != "")):  # the last line and blank ones after it
        yield line
        line = []


def coverage_init(reg, options) -> None:
    """coverage's entry point for the plugin."""
    plugin = ConCoveragePlugin()
    reg.add_file_tracer(plugin)
    reg.add_configurer(plugin)
