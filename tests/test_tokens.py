"""The token layer: paired tables of sources left untouched and sources rewritten."""
import sys
import warnings

import pytest

from conhook._compiler.tokens import rewrite_source

PY312 = sys.version_info >= (3, 12)
PY314 = sys.version_info >= (3, 14)

UNTOUCHED = {
    "plain": "x = f(a) + g(b)\n",
    "spaced-matmul": "y = a @ (b)\n",
    "space-before-at": "y = a @(b)\n",
    "space-after-at": "y = a@ (b)\n",
    "matmul-no-paren": "y = a@b\n",
    "matmul-assign": "a @= b\n",
    "tight-matmul-assign": "a@=(b)\n",
    "decorator-paren": "@(lambda f: f)\ndef g(): pass\n",
    "decorator-name": "@dec\ndef g(): pass\n",
    "indented-decorator": "class C:\n    @(d)\n    def m(self): pass\n",
    "in-string": "s = 'f@(x)'\n",
    "in-bytes": "s = b'f@(x)'\n",
    "in-triple-string": 's = """\nf@(x)\nsibling g@(y)\n"""\n',
    "in-comment": "x = 1  # f@(x) and sibling g@(y)\n",
    "keyword-left": "x = [a for a in b if a]@(c) if 0 else 1\n".replace("]@(c)", "] @ (c)"),
    "keyword-constant-left": "x = None@(y), True@(y)\n",  # keywords, not names (docs/syntax.md)
    "after-newline-in-parens": "y = (a\n@(b))\n",
    "backslash-matmul": "y = a \\\n    @(b)\n",
    "sibling-assign": "sibling = 1\n",
    "sibling-call": "sibling(x)\n",
    "sibling-spaced-call": "sibling (x)\n",
    "sibling-attribute": "sibling.x = 2\n",
    "sibling-argument": "f(sibling)\n",
    "sibling-subscript": "sibling [0]\n",
    "sibling-binop": "y = sibling - f(x)\n",
    "sibling-in": "y = sibling in xs\n",
    "sibling-is": "y = sibling is None\n",
    "sibling-if": "y = sibling if c else d\n",
    "sibling-lambda-param": "f = lambda sibling: sibling\n",
    "sibling-def-param": "def f(sibling): return sibling\n",
    "sibling-keyword-arg": "f(sibling=1)\n",
    "sibling-for": "for sibling in xs: pass\n",
    "keyword-before-at": "def f():\n    return (a) @ (b)\n",
    "non-ascii": "s = 'héllo'; y = a @ (b)\n",
    "crlf": "x = 1\r\ny = a @ (b)\r\n",
    "empty": "",
}


REWRITTEN = {
    "call": ("x = f@(a)\n", "x = f(a).__con_await__\n"),
    "no-args": ("f@()\n", "f().__con_await__\n"),
    "attribute-trailers": ("a.b@(x).c[0]\n", "a.b(x).__con_await__.c[0]\n"),
    "call-trailer": ("f@(x)(y)\n", "f(x).__con_await__(y)\n"),
    "subscript-trailer": ("f@(x)[0]\n", "f(x).__con_await__[0]\n"),
    "chained": ("f@(x)@(y)\n", "f(x).__con_await__(y).__con_await__\n"),
    "nested": ("s.write@(s.read@())\n", "s.write(s.read().__con_await__).__con_await__\n"),
    "unary-and-power": ("y = -f@(x) ** 2\n", "y = -f(x).__con_await__ ** 2\n"),
    "keyword-args": ("f@(a, *b, k=1, **kw,)\n", "f(a, *b, k=1, **kw,).__con_await__\n"),
    "subscript-primary": ("t[0]@(x)\n", "t[0](x).__con_await__\n"),
    "call-primary": ("g()@(x)\n", "g()(x).__con_await__\n"),
    "string-primary": ("'a'.join@(x)\n", "'a'.join(x).__con_await__\n"),
    "spanning-lines": ("f@(\n    a,\n    b)\n", "f(\n    a,\n    b).__con_await__\n"),
    "backslash": ("x = \\\n    f@(a)\n", "x = \\\n    f(a).__con_await__\n"),
    "keyword-follows": ("y = f@(x)if c else d\n", "y = f(x).__con_await__ if c else d\n"),
    "keyword-follows-spaced": ("y = f@(x) if c else d\n", "y = f(x).__con_await__ if c else d\n"),
    "with-comment": ("f@(x)  # f@(y)\n", "f(x).__con_await__  # f@(y)\n"),
    "in-decorator-args": ("@dec@(1)\ndef g(): pass\n", "@dec(1).__con_await__\ndef g(): pass\n"),
    "in-lambda": ("h = lambda: f@(1)\n", "h = lambda: f(1).__con_await__\n"),
    "beside-matmul": ("y = a @ b + f@(c)\n", "y = a @ b + f(c).__con_await__\n"),
    "non-ascii-before": ("s = 'é'; y = f@(1)\n", "s = 'é'; y = f(1).__con_await__\n"),
    "soft-keyword-name": ("match@(x)\n", "match(x).__con_await__\n"),
    "ellipsis-literal": ("y = ...@(x)\n", "y = ...(x).__con_await__\n"),
    "sibling": ("sibling f@(x)\n", "__con_sibling__@ f(x)\n"),
    "sibling-no-args": ("sibling f@()\n", "__con_sibling__@ f()\n"),
    "sibling-comment": ("sibling f@(x)  # go\n", "__con_sibling__@ f(x)  # go\n"),
    "sibling-semicolon": ("sibling f@(x); y = 1\n", "__con_sibling__@ f(x); y = 1\n"),
    "sibling-after-colon": ("if c: sibling f@(x)\n", "if c: __con_sibling__@ f(x)\n"),
    "sibling-attribute": ("sibling a.b@(x)\n", "__con_sibling__@ a.b(x)\n"),
    "sibling-nested-args": ("sibling echo@(s.accept@())\n",
                            "__con_sibling__@ echo(s.accept().__con_await__)\n"),
    "sibling-primary-call": ("sibling f@(x)@(y)\n", "__con_sibling__@ f(x).__con_await__(y)\n"),
    "sibling-indented": ("def f():\n    sibling g@(1)\n", "def f():\n    __con_sibling__@ g(1)\n"),
    "sibling-spanning": ("sibling f@(a,\n        b)\n", "__con_sibling__@ f(a,\n        b)\n"),
}

if PY312:
    REWRITTEN["fstring"] = ('x = f"{g@(1)}!"\n', 'x = f"{g(1).__con_await__}!"\n')
    REWRITTEN["fstring-comparison"] = ('x = f"{g@(1) == 2}"\n', 'x = f"{g(1).__con_await__ == 2}"\n')
    REWRITTEN["fstring-debug-other-field"] = ('x = f"{a=} {g@(1)}"\n', 'x = f"{a=} {g(1).__con_await__}"\n')
if PY314:
    REWRITTEN["tstring"] = ('x = t"{g@(1)}!"\n', 'x = t"{g(1).__con_await__}!"\n')
    REWRITTEN["tstring-ends-primary"] = ('x = t"{a}"@(1)\n', 'x = t"{a}"(1).__con_await__\n')
    REWRITTEN["tstring-debug-other-field"] = ('x = t"{a=} {g@(1)}"\n', 'x = t"{a=} {g(1).__con_await__}"\n')
    REWRITTEN["except-without-brackets"] = ("try: pass\nexcept g@(1), E: pass\n",
                                            "try: pass\nexcept g(1).__con_await__, E: pass\n")


@pytest.mark.parametrize("source", UNTOUCHED.values(), ids=UNTOUCHED.keys())
def test_untouched(source):
    result = rewrite_source(source)
    assert result.source is source or result.source == source
    assert not result.changed


@pytest.mark.parametrize("source,expected", REWRITTEN.values(), ids=REWRITTEN.keys())
def test_rewritten(source, expected):
    result = rewrite_source(source)
    assert result.source == expected
    assert result.source.count("\n") == source.count("\n"), "no line may be added or removed"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # `...(x)`: "'ellipsis' object is not callable"
        compile(result.source, "<test>", "exec")


@pytest.mark.parametrize("source,expected", REWRITTEN.values(), ids=REWRITTEN.keys())
def test_columns_map_back(source, expected):
    """Every character that survived the rewrite maps back to its original column."""
    result = rewrite_source(source)
    original = source.splitlines()
    for lineno, line in enumerate(result.source.splitlines(), 1):
        for col, char in enumerate(line):
            back = result.columns.char_to_original(lineno, col)
            if original[lineno - 1][back:back + 1] == char:
                continue
            # Only text that the rewrite inserted may map elsewhere.
            assert "__con_" in line, (lineno, col, char)


def test_column_map_over_marker_points_at_call_end():
    result = rewrite_source("y = f@(x) + 1\n")
    rewritten = result.source.splitlines()[0]
    marker_end = rewritten.index("__con_await__") + len("__con_await__")
    assert result.columns.char_to_original(1, marker_end) == len("y = f@(x)")
    plus = rewritten.index("+")
    assert result.columns.char_to_original(1, plus) == "y = f@(x) + 1".index("+")


TABLE_CASES = {
    **{name: source for name, (source, _) in REWRITTEN.items()},
    "several-edits": "y = f@(x)@(y) + g@(h@(1), k@()); sibling m@(n@(2))\n",
    "chained-no-space": "f@(x)@(y)@(z)\n",
}


@pytest.mark.parametrize("source", TABLE_CASES.values(), ids=TABLE_CASES.keys())
def test_byte_table_agrees_with_byte_to_original(source):
    columns = rewrite_source(source).columns
    for lineno in columns.edits:
        if not columns.original_lines[lineno - 1].isascii():
            assert columns.byte_table(lineno) is None
            continue
        table, shift = columns.byte_table(lineno)
        for col in range(len(columns.rewritten_lines[lineno - 1]) + 3):
            expected = columns.char_to_original(lineno, col)  # an ASCII line: bytes are characters
            assert (table[col] if col < len(table) else col - shift) == expected, (lineno, col)
            assert columns.byte_to_original(lineno, col) == expected, (lineno, col)


def test_byte_table_is_none_for_non_ascii_lines():
    columns = rewrite_source("s = 'é'; y = f@(1)\n").columns
    assert columns.byte_table(1) is None


def test_byte_columns_with_non_ascii():
    source = "s = 'éé'; y = f@(x) + z\n"
    result = rewrite_source(source)
    new = result.source.splitlines()[0]
    z_byte = len(new[:new.index("z")].encode())
    assert result.columns.byte_to_original(1, z_byte) == len(source[:source.index("z")].encode())


SYNTAX_ERRORS = {
    "sibling-in-expression": ("x = sibling f@(1)\n", 1, 5),
    "sibling-needs-call": ("sibling f\n", 1, 1),
    "sibling-needs-nonatomic-call": ("sibling f(x)\n", 1, 1),
    "sibling-call-not-last": ("sibling f@(x) + 1\n", 1, 1),
    "reserved-name": ("__con_x = 1\n", 1, 1),
}
if PY312:
    SYNTAX_ERRORS["fstring-debug-specifier"] = ('x = f"{g@(1)=}"\n', 1, 13)
else:
    SYNTAX_ERRORS["fstring-311"] = ('x = f"a{g@(1)}"\n', 1, 10)
if PY314:
    SYNTAX_ERRORS["tstring-debug-specifier"] = ('x = t"{g@(1)=}"\n', 1, 13)
    SYNTAX_ERRORS["tstring-in-fstring-debug-specifier"] = ('x = f"{t"{g@(1)=}"}"\n', 1, 16)


@pytest.mark.parametrize("source,line,col", SYNTAX_ERRORS.values(), ids=SYNTAX_ERRORS.keys())
def test_syntax_errors_name_place(source, line, col):
    with pytest.raises(SyntaxError) as info:
        rewrite_source(source, "mod.py")
    error = info.value
    assert (error.filename, error.lineno, error.offset) == ("mod.py", line, col)
    assert error.text == source.splitlines(True)[line - 1]


@pytest.mark.skipif(PY312, reason="3.12+ tokenizes f-strings")
def test_fstring_on_311_only_rejects_fields():
    assert not rewrite_source('x = f"mail@(home) {a}"\n').changed
    with pytest.raises(SyntaxError, match="3.12"):
        rewrite_source('x = f"{a} {b.c@(1)}"\n')


# -- the single scan notes only what may matter: what it must still find ------------------

FILLER = "x = [f(a) @ b for a in c]  # @( sibling\ns = 'f@(x) __con_y'\n" * 100
FOUND_LATE = {
    "reserved-name": (FILLER + "y = 1; __con_x = 2\n", 201, 8, "reserved"),
    "sibling-in-expression": (FILLER + "y = (1,\n     sibling f@(1))\n", 202, 6, "starts a statement"),
    "sibling-without-call": (FILLER + "if y: sibling f(1)\n", 201, 7, "takes a non-atomic call"),
}
if PY314:
    FOUND_LATE["tstring-debug"] = ('x = t"{a=} {b!r:>{c}}"\n' * 100 + 'y = t"{a=} {g@(1)=}"\n',
                                   101, 18, "template string's '=' specifier")
if PY312:
    FOUND_LATE["fstring-debug"] = ('x = f"{a=} {b!r:>{c}}"\n' * 100 + 'y = f"{a=} {g@(1)=}"\n',
                                   101, 18, "'=' specifier")
else:
    FOUND_LATE["fstring-311"] = ('x = f"{a} {b!r:>{c}} @(d)"\n' * 100 + 'y = f"{a} {g@(1)}"\n',
                                 101, 13, "3.12")


@pytest.mark.parametrize("source,line,col,words", FOUND_LATE.values(), ids=FOUND_LATE.keys())
def test_errors_after_much_text_that_only_looks_like_con_syntax(source, line, col, words):
    with pytest.raises(SyntaxError) as info:
        rewrite_source(source, "mod.py")
    assert (info.value.lineno, info.value.offset) == (line, col)
    assert words in info.value.msg


def test_the_first_error_in_the_file_is_reported():
    sibling_first = "def f():\n    sibling g(1)\n    __con_x = 1\n"
    with pytest.raises(SyntaxError, match="non-atomic call") as info:
        rewrite_source(sibling_first)
    assert info.value.lineno == 2
    reserved_first = "def f():\n    __con_x = 1\n    sibling g(1)\n"
    with pytest.raises(SyntaxError, match="reserved") as info:
        rewrite_source(reserved_first)
    assert info.value.lineno == 2
