"""The one compile pipeline, used by every entry point.

    source -> token rewrite (markers) -> AST step -> compile -> bytecode rewrite

``--show`` prints the first stage (``rewrite_tokens``), ``--dis`` the last.
"""
from __future__ import annotations

import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ast

    from . import tokens

# The stages (and with them ``ast``, ``tokenize`` and the ``bytecode`` library) are
# imported by the first compile, not here: a module imported from conhook's cache needs
# none of them, and its import stays as cheap as an ordinary one.



def rewrite_tokens(source: str, filename: str = "<con>") -> tokens.TokenRewrite:
    from . import tokens
    return tokens.rewrite_source(source, filename)


def compile_con(source: str | bytes, filename: str = "<con>", mode: str = "exec", *,
                toplevel: bool = False, optimize: int = -1) -> types.CodeType:
    """Compile con source into a code object whose non-atomic functions are coroutines.

    ``toplevel`` lets the module level itself make non-atomic calls and start threads
    (for ``%%con`` cells and the REPL); the module code is then a coroutine too.
    ``mode`` is ``compile``'s: ``"single"`` (the REPL) shows the value of each top-level
    expression statement through ``sys.displayhook``.
    """
    if isinstance(source, bytes):
        source = decode_source(source, filename)
    try:
        rewrite = rewrite_tokens(source, filename)
        if not rewrite.changed:
            # No con syntax, so no marker (the token layer rejects reserved names):
            # exactly what CPython compiles, at CPython's cost (docs/spec.md §2.2).
            return compile(source, filename, mode, dont_inherit=True, optimize=optimize)
    except SyntaxError as error:
        # Only the user's file matters in a syntax error: drop the pipeline's frames.
        raise error.with_traceback(None) from None
    tree = _parse(rewrite, filename, mode)
    return compile_tree(tree, rewrite, filename, mode, toplevel=toplevel, optimize=optimize)


def parse_con(source: str | bytes, filename: str = "<con>",
              mode: str = "exec") -> tuple[ast.AST, tokens.TokenRewrite]:
    """The first stages: token rewrite and ``ast.parse`` of the rewritten text.

    The tree still holds the markers and the rewritten text's columns; ``compile_tree``
    does the rest.  Tools that transform the tree in between (the pytest plugin's
    assertion rewriting, the ``%%con`` cell's trailing expression) call the two halves.
    """
    if isinstance(source, bytes):
        source = decode_source(source, filename)
    try:
        rewrite = rewrite_tokens(source, filename)
    except SyntaxError as error:
        raise error.with_traceback(None) from None
    return _parse(rewrite, filename, mode), rewrite


def _parse(rewrite: tokens.TokenRewrite, filename: str, mode: str) -> ast.AST:
    import ast
    try:
        try:
            return ast.parse(rewrite.source, filename, mode)
        except SyntaxError as error:
            raise rewrite.columns.restore_syntax_error(error) from None
    except SyntaxError as error:
        raise error.with_traceback(None) from None


def compile_tree(tree: ast.AST, rewrite: tokens.TokenRewrite, filename: str = "<con>",
                 mode: str = "exec", *, toplevel: bool = False, optimize: int = -1,
                 opener: str = "prejoin") -> types.CodeType:
    """The last stages: AST step, ``compile``, bytecode rewrite (see ``parse_con``); ``opener``
    names what opens a top-level scope (``ast_step.transform``)."""
    from . import ast_step, bytecode_layer
    try:
        tree = ast_step.transform(tree, rewrite, filename, toplevel=toplevel, opener=opener)
        code = compile(tree, filename, mode, dont_inherit=True, optimize=optimize)
    except SyntaxError as error:
        raise error.with_traceback(None) from None
    return bytecode_layer.make_nonatomic(code)


def decode_source(data: bytes, filename: str = "<con>") -> str:
    """Bytes of a source file to text, honouring the coding cookie and BOM (PEP 263).

    Bytes that cannot be decoded are a ``SyntaxError`` in CPython's own words, with the file
    and line CPython names (``importlib.util.decode_source`` gives neither, and words of its own).
    """
    import importlib.util
    try:
        return importlib.util.decode_source(data)
    except (SyntaxError, UnicodeDecodeError) as error:
        _raise_cpythons_decoding_error(data, filename)
        # CPython would have read it (an undecodable byte in a comment): say where it stands.
        start = getattr(error, "start", 0)
        lineno = data.count(b"\n", 0, start) + 1
        line = data.splitlines()[lineno - 1].decode("utf-8", "replace") if data else ""
        raise SyntaxError(f"conhook cannot read this file: {error}",
                          (filename, lineno, None, line)).with_traceback(None) from None


def _raise_cpythons_decoding_error(data: bytes, filename: str) -> None:
    """Let CPython's compiler meet what decoding `data` met, and raise what it raises.

    The encoding declaration and the BOM stand in the first two lines, which are comments when
    they hold one: compiling those alone raises CPython's error about them.  Otherwise some
    byte does not decode: the text is decoded keeping such bytes (``surrogateescape``), its
    con syntax rewritten into plain Python on the same lines, and it is encoded back and
    compiled, so that CPython stops at the first byte that does not decode, as it would have.
    """
    import io
    import tokenize
    lines = data.splitlines(keepends=True)[:2]
    head = [line if line.lstrip(b"\xef\xbb\xbf \t\f").startswith((b"#", b"\n", b"\r")) else b"\n"
            for line in lines]
    try:
        compile(b"".join(head), filename, "exec", dont_inherit=True)
    except SyntaxError as error:
        raise error.with_traceback(None) from None
    try:  # (CPython found no fault with the declaration: it is there, or the default)
        encoding = tokenize.detect_encoding(io.BytesIO(b"".join(head)).readline)[0]
        text = data.decode(encoding, errors="surrogateescape")
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return
    # The token layer reads the text with a '?' for each byte that did not decode (its
    # tokenizer refuses what stands for them); its edits go into the text that keeps them.
    import re

    from .positions import apply_edits
    try:
        columns = rewrite_tokens(re.sub("[\udc80-\udcff]", "?", text), filename).columns
    except SyntaxError:
        return
    lines = apply_edits(text.splitlines(keepends=True), columns.edits)
    plain = "".join(lines).encode(encoding, errors="surrogateescape")
    try:
        compile(plain, filename, "exec", dont_inherit=True)
    except SyntaxError as error:
        raise columns.restore_syntax_error(error).with_traceback(None) from None
