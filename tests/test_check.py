"""``python -m conhook check``: what it must report (code, line, column), what it must not, and
that the repository's own con code (samples, docs examples, the tests' con modules) is clean."""
import ast
import inspect
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import types

import pytest

from conhook._compiler import pipeline
from conhook._reserved_names import CO_COROUTINE
from conhook._toolchain import check, con_api, resolve

ROOT = pathlib.Path(__file__).resolve().parent.parent

HEADER = ("import con\nfrom con import sleep, timeout, Queue, tcpconnect, to_thread\n"
          "import time, subprocess, socket, requests\n")
H = HEADER.count("\n")  # the snippets' lines are counted after the header


def diagnostics(source, tmp_path, name="snippet.py", toplevel=False):
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    found = check.Checker([str(tmp_path)]).check_source(source, str(path), name=name[:-3],
                                                        toplevel=toplevel)
    return [(d.code, d.line, d.col) for d in found]


# (snippet after HEADER, the diagnostics it must produce as (code, line, column), lines
# counted from the snippet's first line)
MUST_REPORT = [
    # CON101: a non-atomic function called without @, its call object dropped or kept
    ("def f():\n    sleep@(1)\n\ndef main():\n    f()\n", [("CON101", 5, 5)]),
    ("def main():\n    x = sleep(1)\n", [("CON101", 2, 9)]),
    ("def main():\n    x = sleep(1)\n    print(x)\n    if x == 1:\n        pass\n", [("CON101", 2, 9)]),
    ("def main():\n    x = 0\n    x += con.idle()\n", [("CON101", 3, 10)]),
    ("def main():\n    con.sleep(1)\n", [("CON101", 2, 5)]),
    ("def main():\n    x: object = con.idle()\n", [("CON101", 2, 17)]),
    ("def main(q: con.Queue):\n    q.get()\n", [("CON101", 2, 5)]),
    ("def main():\n    q = Queue()\n    q.put(1)\n", [("CON101", 3, 5)]),
    ("def main():\n    s = tcpconnect@('h', 1)\n    s.write(b'x')\n", [("CON101", 3, 5)]),
    ("def main(listener: con.Listener):\n    s = listener.accept@()\n    s.read()\n", [("CON101", 3, 5)]),
    ("def main():\n    lock = con.Lock()\n    with lock.hold():\n        pass\n", [("CON101", 3, 10)]),
    ("def main():\n    if con.sleep(0):\n        pass\n", [("CON101", 2, 8)]),
    ("class C:\n    def m(self):\n        sleep@(1)\n    def n(self):\n        self.m()\n",
     [("CON101", 5, 9)]),
    ("class C:\n    @staticmethod\n    def m():\n        sleep@(1)\n    def n(self):\n        C.m()\n"
     "    @classmethod\n    def k(cls):\n        cls.m()\n", [("CON101", 6, 9), ("CON101", 9, 9)]),
    ("def outer():\n    def inner():\n        sleep@(1)\n    inner()\n    sleep@(0)\n", [("CON101", 4, 5)]),
    ("async def f():\n    pass\n\ndef main():\n    f()\n", [("CON101", 5, 5)]),
    ("def f():\n    sibling g@()\n\ndef g():\n    pass\n\ndef main():\n    f()\n", [("CON101", 8, 5)]),
    ("main = lambda: sleep@(1)\nmain()\n", [("CON101", 2, 1)]),
    # CON102: @() on what is not non-atomic
    ("def main():\n    print@('x')\n", [("CON102", 2, 5)]),
    ("def main():\n    with timeout@(1):\n        sleep@(1)\n", [("CON102", 2, 10)]),
    ("def main():\n    con.timeout@(1)\n", [("CON102", 2, 5)]),
    ("def plain(x):\n    print(x)\n\ndef main():\n    plain@(1)\n", [("CON102", 5, 5)]),
    ("def plain(x):\n    return x + 1\n\ndef main():\n    plain@(1)\n", [("CON102", 5, 5)]),
    ("def main():\n    time.sleep@(1)\n", [("CON102", 2, 5)]),
    ("def main():\n    con.tree@()\n", [("CON102", 2, 5)]),
    ("def main():\n    q = Queue()\n    q.put_nowait@(1)\n", [("CON102", 3, 5)]),
    ("def main():\n    e = con.Event@()\n", [("CON102", 2, 9)]),
    ("def main():\n    s = tcpconnect@('h', 1)\n    s.close@()\n", [("CON102", 3, 5)]),
    # CON103: a spaced @ after a non-atomic function
    ("def main():\n    sleep @ (1)\n", [("CON103", 2, 11)]),
    ("def main():\n    x = con.sleep @(1)\n", [("CON103", 2, 19)]),
    ("def f(x):\n    sleep@(x)\n\ndef main():\n    f@ (1)\n", [("CON103", 5, 6)]),
    # CON201: a blocking call in a non-atomic function
    ("def main():\n    sleep@(0)\n    time.sleep(1)\n", [("CON201", 3, 5)]),
    ("def main():\n    sleep@(0)\n    subprocess.run(['ls'])\n", [("CON201", 3, 5)]),
    ("def main():\n    sleep@(0)\n    requests.get('http://x')\n", [("CON201", 3, 5)]),
    ("def main():\n    sleep@(0)\n    socket.create_connection(('h', 1))\n", [("CON201", 3, 5)]),
    ("def main():\n    sleep@(0)\n    with open('f') as f:\n        f.read()\n", [("CON201", 3, 10)]),
    ("from time import sleep as nap\ndef main():\n    sleep@(0)\n    nap(1)\n", [("CON201", 4, 5)]),
    ("async def main():\n    time.sleep(1)\n", [("CON201", 2, 5)]),
    # CON301: a timeout that can never fire
    ("def main():\n    with timeout(1):\n        x = 1 + 1\n    sleep@(x)\n", [("CON301", 2, 10)]),
    ("def main():\n    with con.timeout(1), open('f'):\n        pass\n    sleep@(0)\n",
     [("CON301", 2, 10), ("CON201", 2, 26)]),
    # several in one file, in order
    ("def main():\n    con.sleep(1)\n    print@(1)\n", [("CON101", 2, 5), ("CON102", 3, 5)]),
    # a tight @ the compiler rejects is its SyntaxError, at the @
    ("x = sleep@(1)\n", [("CON001", 1, 10)]),
]

MUST_NOT_REPORT = [
    # an async generator is iterated with async for, not called with @
    "async def ticks():\n    yield 1\n\nasync def main():\n    async for t in ticks():\n        print(t)\n",
    "def main():\n    sleep@(1)\n",
    "def f():\n    sleep@(1)\n\ndef main():\n    con.gather@(f(), f())\n",  # call objects passed on
    "def f():\n    sleep@(1)\n\ndef g():\n    return f()\n",
    "def main():\n    c = con.sleep(1)\n    con.gather@(c)\n",  # a call object stored, then passed on
    "def main():\n    c = con.sleep(1)\n    calls = [c]\n    con.gather@(*calls)\n",
    "def main():\n    c = con.sleep(1)\n    def later():\n        return c\n    return later\n",
    "def main(obj):\n    obj.c = con.sleep(1)\n",  # kept where the checker does not follow
    "def f():\n    sleep@(1)\n\ndef main():\n    sibling f@()\n",
    "def plain():\n    print(1)\n\ndef main():\n    sibling plain@()\n",  # an atomic thread
    "def main():\n    to_thread@(time.sleep, 1)\n",
    "def main():\n    to_thread@(lambda: time.sleep(1))\n",
    "def blocking():\n    time.sleep(1)\n\ndef main():\n    to_thread@(blocking)\n",
    "def main():\n    with timeout(1):\n        sleep@(2)\n",
    "def main():\n    with timeout(1):\n        for _ in range(3):\n            x = [sleep@(0) for _ in 'ab']\n",
    "async def main():\n    with timeout(1):\n        await sleep(1)\n",
    "def main():\n    q = Queue()\n    q.put_nowait(1)\n    q.get@()\n",
    # tcpconnect@(..., tls=True) returns a TLSStream: its own methods are not a Stream's mistakes
    "def main():\n    s = tcpconnect@('h', 443, tls=True)\n    s.handshake@()\n    v = s.version()\n",
    # what the checker cannot know, it leaves alone
    "def main(obj):\n    obj.read()\n    obj.wait@()\n",
    "def f():\n    return make()\n\ndef main():\n    f@()\n",  # may return a call object
    "import functools\n@functools.lru_cache\ndef f():\n    pass\n\ndef main():\n    f@()\n",
    "def f():\n    sleep@(1)\nf = other\ndef main():\n    f()\n",  # bound twice
    "def main(sleep):\n    sleep(1)\n",  # a parameter shadows the import
    "class C:\n    def __init__(self, m):\n        self.m = m\n    def m(self):\n        sleep@(1)\n"
    "    def n(self):\n        self.m()\n",  # the instance's attribute hides the method
    "import functools\nclass C:\n    @functools.cache\n    def m(self):\n        sleep@(1)\n"
    "    def n(self):\n        self.m()\n",
    "def f():\n    sleep@(1)\ndef patch():\n    global f\n    f = print\ndef main():\n    f()\n",
    "def main():\n    def f():\n        sleep@(1)\n    def patch():\n        nonlocal f\n        f = print\n"
    "    f()\n",
    "def main():\n    def print(x):\n        sleep@(x)\n    print@(1)\n",
    "import numpy\ndef main(a, b):\n    return a @ (b)\n",  # matrix multiplication of values
    "def plain():\n    time.sleep(1)\n",  # blocking outside con code: to_thread@'s business
    "def main():\n    sleep@(0)\n    session = requests.Session()\n    to_thread@(session.get, 'u')\n",
    "def main(a):\n    c = con.sleep(1)\n    d = con.sleep(2)\n    con.gather@(c if a else d)\n",
    "def main(a):\n    c = con.sleep(1)\n    con.gather@(a or c)\n",
    "def main():\n    sleep@(0)\n    x = sleep\n    callback(sleep)\n",  # referred to, not called
    "def main():\n    con.sleep(1)  # noqa\n",
    "def main():\n    con.sleep(1)  # noqa: CON101\n",
    "def main():\n    con.sleep(1)  # NOQA:CON1\n",
    "def main():\n    con.sleep(1)  # noqa: E501, CON101\n",
]


@pytest.mark.parametrize("snippet,expected", MUST_REPORT, ids=[f"report-{i}" for i in range(len(MUST_REPORT))])
def test_snippet_reports(tmp_path, snippet, expected):
    found = diagnostics(HEADER + snippet, tmp_path)
    assert found == [(code, line + H, col) for code, line, col in expected]


@pytest.mark.parametrize("snippet", MUST_NOT_REPORT, ids=[f"clean-{i}" for i in range(len(MUST_NOT_REPORT))])
def test_snippet_is_clean(tmp_path, snippet):
    assert diagnostics(HEADER + snippet, tmp_path) == []


def test_noqa_names_only_what_it_silences(tmp_path):
    assert diagnostics(HEADER + "def main():\n    con.sleep(1)  # noqa: CON102\n", tmp_path) == [
        ("CON101", H + 2, 5)]


def test_toplevel_input_may_make_non_atomic_calls(tmp_path):
    assert diagnostics(HEADER + "x = sleep@(1)\ny = con.sleep(1)\n", tmp_path, toplevel=True) == [
        ("CON101", H + 2, 5)]


def test_lines_are_counted_as_python_counts_them(tmp_path):
    # A form feed or a line separator in a comment or a string ends no line (str.splitlines
    # would say it does, and read the noqa of another line).
    source = HEADER + "x = 1  # \x0c \u2028\ndef main():\n    con.sleep(1)  # noqa\n    con.sleep(2)\n"
    assert diagnostics(source, tmp_path) == [("CON101", H + 4, 5)]


def test_the_columns_are_characters_of_the_users_line(tmp_path):
    assert diagnostics(HEADER + "def main():\n    s = 'é'; con.sleep(1)\n", tmp_path) == [("CON101", H + 2, 14)]


# -- across modules --------------------------------------------------------------------------------

def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_imported_con_modules_are_read_never_run(tmp_path):
    ran = tmp_path / "ran"
    write(tmp_path / "lib.py", f"""\
        import con
        open({str(ran)!r}, "w").close()
        def fetch(x):
            return con.sleep@(x)
        def plain(x):
            pass
        """)
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "a.py", "import con\nfrom .b import helper\n")
    write(tmp_path / "pkg" / "b.py", "import con\ndef helper():\n    con.idle@()\n")
    app = write(tmp_path / "app.py", """\
        import con
        import lib
        from lib import fetch as get
        from pkg.a import helper
        import pkg.b
        def main():
            lib.fetch(1)
            get(1)
            lib.plain@(1)
            helper()
            pkg.b.helper()
            x = lib.fetch @ (1)
        """)
    found = [(d.code, d.line, d.col) for d in check.Checker([str(tmp_path)]).check_file(str(app))]
    assert found == [("CON101", 7, 5), ("CON101", 8, 5), ("CON102", 9, 5), ("CON101", 10, 5),
                     ("CON101", 11, 5), ("CON103", 12, 19)]
    assert not ran.exists()


def test_a_module_in_a_package_finds_its_package_when_named_alone(tmp_path):
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "sub" / "__init__.py", "")
    write(tmp_path / "pkg" / "sub" / "helpers.py", "import con\ndef helper():\n    con.idle@()\n")
    mod = write(tmp_path / "pkg" / "sub" / "mod.py", """\
        import con
        from . import helpers
        from pkg.sub.helpers import helper
        def main():
            helpers.helper()
            helper()
        """)
    found = [(d.code, d.line) for d in check.Checker([str(mod)]).check_file(str(mod))]
    assert found == [("CON101", 5), ("CON101", 6)]


@pytest.mark.parametrize("source,expected", [
    ("import os, con\ndef f():\n    sibling g@()\n", True),
    ("import os\nfrom conhook.testing import x\nsibling = 1\n", True),
    ("if True:\n    import con\n", False),
    ('"""\nimport con\n"""\n', False),
    ("import os; import con\n", False),
    ("import numpy as con\n", False),
    ("import con\ndef f(:\n", True),  # does not compile: the lines decide
])
def test_a_module_opts_in_as_the_import_hook_has_it(source, expected):
    from conhook import _import_hook
    assert resolve.opts_in(source) is expected
    assert _import_hook.imports_con(source.encode()) is expected


def test_a_module_that_does_not_opt_in_defines_nothing_non_atomic(tmp_path):
    write(tmp_path / "plainlib.py", "def fetch(x):\n    return x @(1)\n")
    app = write(tmp_path / "app.py", "import con\nfrom plainlib import fetch\ndef main():\n    fetch(1)\n")
    assert check.Checker([str(tmp_path)]).check_file(str(app)) == []


# -- the command ---------------------------------------------------------------------------------------

def run_check(*args, cwd):
    return subprocess.run([sys.executable, "-m", "conhook", "check", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_the_command_reports_file_line_col_code_and_fails(tmp_path):
    write(tmp_path / "prog.py", "import con\ndef main():\n    con.sleep(1)\n")
    write(tmp_path / "plain.py", "def f(a, b):\n    return a@(b)\n")  # not con code: not searched
    result = run_check(tmp_path, cwd=tmp_path)
    assert result.stdout == (f"{tmp_path / 'prog.py'}:3:5: CON101 'con.sleep' is non-atomic: called without "
                             "@ it makes a call object that never runs; write 'con.sleep@(...)'\n")
    assert result.returncode == 1, result.stderr
    named = run_check("plain.py", cwd=tmp_path)  # named: checked as con code (a@(b) is a call)
    assert (named.returncode, named.stdout) == (0, "")


def test_a_named_file_of_plain_python_is_left_alone(tmp_path):
    # asyncio code, where time.sleep in an async def is asyncio's business, not con's
    write(tmp_path / "aio.py", "import asyncio, time\nasync def main():\n    time.sleep(1)\n")
    write(tmp_path / "con_syntax.py", "import time\nasync def main():\n    time.sleep(1)\n    f@(1)\n")
    result = run_check("aio.py", "con_syntax.py", cwd=tmp_path)
    assert result.stdout.startswith("con_syntax.py:3:5: CON201 'time.sleep' blocks")
    assert result.stdout.count("\n") == 1 and result.returncode == 1


def test_the_command_passes_clean_code_and_refuses_a_missing_path(tmp_path):
    write(tmp_path / "prog.py", "import con\ndef main():\n    con.sleep@(1)\n")
    assert (run_check("prog.py", cwd=tmp_path).returncode, run_check("prog.py", cwd=tmp_path).stdout) == (0, "")
    missing = run_check("nothing.py", cwd=tmp_path)
    assert missing.returncode == 2 and "nothing.py: no such file or directory" in missing.stderr


def test_a_syntax_error_is_reported_as_con001(tmp_path):
    write(tmp_path / "bad.py", "import con\ndef main():\n    sibling (x)@(1) +\n")
    result = run_check("bad.py", cwd=tmp_path)
    assert result.returncode == 1 and re.match(r"bad\.py:3:\d+: CON001 ", result.stdout), result.stdout


# -- the repository's own con code ---------------------------------------------------------------------

def repository_con_files():
    files = sorted((ROOT / "samples").glob("*.py"))
    files += [p for p in sorted((ROOT / "tests").rglob("*.py")) if resolve.opts_in(p.read_text(encoding="utf-8"))]
    return files


def docs_con_examples():
    """The ```python blocks of the docs and the README that are con code (they hold con syntax
    or import con; the compiler's own output, with its reserved names, is not)."""
    block = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
    for md in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        text = md.read_text(encoding="utf-8")
        for found in block.finditer(text):
            source = found.group(1)
            if ("@(" in source or "sibling " in source or resolve.opts_in(source)) and "__con_" not in source:
                yield f"{md.relative_to(ROOT)}:{text.count(chr(10), 0, found.start(1)) + 1}", source


def test_the_repositorys_con_files_are_clean():
    files = repository_con_files()
    assert len(files) > 30 and ROOT / "samples" / "echo.py" in files
    project = check.Checker([str(ROOT)])
    assert [str(d) for path in files for d in project.check_file(str(path))] == []


def test_the_docs_con_examples_are_clean():
    examples = list(docs_con_examples())
    assert len(examples) >= 12
    project = check.Checker([str(ROOT)])
    # Fragments make non-atomic calls at top level, as at the REPL's prompt.
    assert [str(d) for where, source in examples
            for d in project.check_source(source, where, toplevel=True)] == []


def test_the_checkers_non_atomic_functions_are_the_compilers_coroutines():
    """Over every con file of the repository: the functions ``check.nonatomic`` names are
    exactly those the compiler makes coroutine functions."""
    functions = 0
    for path in repository_con_files():
        source = path.read_text(encoding="utf-8")
        compiled = set()
        stack = [pipeline.compile_con(source, str(path))]
        while stack:
            code = stack.pop()
            stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
            # (3.11's comprehensions are functions too: the function around one is what counts)
            if code.co_flags & CO_COROUTINE and (code.co_name == "<lambda>" or not code.co_name.startswith("<")):
                compiled.add((code.co_name, code.co_firstlineno))
        module = resolve.Project([str(ROOT)]).read(str(path), None, source)
        checker = set()
        for node in ast.walk(module.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and resolve.nonatomic(node):
                first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
                checker.add((getattr(node, "name", "<lambda>"), first))
        assert checker == compiled, path
        functions += len(compiled)
    assert functions > 300


# -- the con API's table against the runtime -------------------------------------------------------------

def _documented_nonatomic(name, obj):
    return inspect.iscoroutinefunction(obj) or f"{name}@(" in (inspect.getdoc(obj) or "").split("\n")[0]


def test_the_api_table_is_the_runtimes():
    import con
    functions = {n for n in con.__all__ if not isinstance(getattr(con, n), type)}
    classes = {n for n in con.__all__ if isinstance(getattr(con, n), type)}
    assert functions == con_api.NONATOMIC_FUNCTIONS | con_api.ATOMIC_FUNCTIONS
    assert {n for n in functions if _documented_nonatomic(n, getattr(con, n))} == con_api.NONATOMIC_FUNCTIONS
    assert classes == set(con_api.CLASSES)
    for name in classes:
        public = {m for base in getattr(con, name).__mro__ if base.__module__.startswith("conhook.")
                  for m, v in vars(base).items() if callable(v) and not m.startswith("_")}  # (Stream's fileno)
        nonatomic = {m for m in public if _documented_nonatomic(m, getattr(getattr(con, name), m))}
        assert nonatomic == con_api.CLASSES[name], name
        assert public - nonatomic == con_api.ATOMIC_METHODS.get(name, set()), name
    for function, returned in con_api.RETURNS.items():
        cls, _, method = function.rpartition(".")
        assert set(returned) <= classes
        assert method in (con_api.CLASSES[cls] if cls else con_api.NONATOMIC_FUNCTIONS)
