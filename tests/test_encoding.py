"""Source that does not decode is a SyntaxError in CPython's words, file and line (issue 12, item 25)."""
from __future__ import annotations

import importlib
import sys

import pytest

import conhook
from conhook._compiler.pipeline import compile_con

# Each source, and the plain Python CPython compiles in its place (con syntax as plain calls, on
# the same columns), whose error conhook must report for it.
CASES = {
    "undecodable-byte": (b'x = 1\ns = "\xff"\n', None),
    "undecodable-byte-after-con-syntax": (b'import con\ndef f():\n    sibling g@(1)\n    s = "\xff"\n',
                                          b'import con\ndef f():\n    pass; g(1)   \n    s = "\xff"\n'),
    "latin-1-declared-with-a-bom": (b'\xef\xbb\xbf# -*- coding: latin-1 -*-\nx = f@(1)\n', None),
    "unknown-encoding": (b'# coding: nope\nx = f@(1)\n', None),
    "utf-8-declared-latin-1-written": (b'# coding: utf-8\ndef f():\n    return g@("\xe9")\n', None),
}


def cpythons_error(data):
    with pytest.raises(SyntaxError) as info:
        compile(data, "mod.py", "exec")
    error = info.value
    return error.msg, error.filename, error.lineno, error.offset


@pytest.mark.parametrize("source, plain", CASES.values(), ids=CASES.keys())
def test_compile_con_reports_what_cpython_reports(source, plain):
    with pytest.raises(SyntaxError) as info:
        compile_con(source, "mod.py")
    error = info.value
    assert (error.msg, error.filename, error.lineno, error.offset) == cpythons_error(plain or source)


def test_the_import_hook_names_the_file_and_line(tmp_path, monkeypatch):
    path = tmp_path / "undecodable_mod.py"
    source = b'import con\n\ndef f():\n    return g@("\xff")\n'
    path.write_bytes(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    conhook.install()
    with pytest.raises(SyntaxError) as info:
        importlib.import_module("undecodable_mod")
    assert (info.value.filename, info.value.lineno) == (str(path), 4)
    with pytest.raises(SyntaxError) as cpython:  # what CPython says of it (its words vary by version)
        compile(source.replace(b"g@(", b"g("), str(path), "exec")
    assert info.value.msg == cpython.value.msg


def test_a_latin_1_file_that_declares_it_compiles():
    namespace = {}
    exec(compile_con('# coding: latin-1\ndef f():\n    return "\xe9"\n'.encode("latin-1"), "mod.py"), namespace)
    assert namespace["f"]() == "é"
