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
        source = decode_source(source)
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
        source = decode_source(source)
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
                 mode: str = "exec", *, toplevel: bool = False, optimize: int = -1) -> types.CodeType:
    """The last stages: AST step, ``compile``, bytecode rewrite (see ``parse_con``)."""
    from . import ast_step, bytecode_layer
    try:
        tree = ast_step.transform(tree, rewrite, filename, toplevel=toplevel)
        code = compile(tree, filename, mode, dont_inherit=True, optimize=optimize)
    except SyntaxError as error:
        raise error.with_traceback(None) from None
    return bytecode_layer.make_nonatomic(code)


def decode_source(data: bytes) -> str:
    """Bytes of a source file to text, honouring the coding cookie and BOM (PEP 263)."""
    import importlib.util
    return importlib.util.decode_source(data)
