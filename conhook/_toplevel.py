"""Top-level con code: what ``%%con`` cells and the REPL have in common.

Both compile their input with the one pipeline in ``toplevel`` mode (the module level
may make non-atomic calls and start siblings) and run it as one call on a fresh
scheduler, in a namespace that lives on between inputs::

    code = compile_input(source, filename, keep_result=True)
    value = run_input(code, namespace)

A cell shows the value of its trailing expression statement, as an IPython cell does.
So that this value is computed inside the cell's prejoin scope (``sibling`` threads are
still running while it is evaluated), the statement is turned, between the parse and the
AST step, into an assignment to the reserved name ``__con_result__``, which ``run_input``
takes back out of the namespace.  The REPL compiles in ``"single"`` mode instead, where
CPython itself shows every top-level expression statement, as ``python`` does.
"""
from __future__ import annotations

import ast
import io
import tokenize
import types

from ._compiler import pipeline
from ._reserved_names import RESULT_NAME, SIBLING_MARKER
from ._runtime.prejoin import prepare_namespace



def compile_input(source: str, filename: str, mode: str = "exec", *,
                  keep_result: bool = False, background: bool = False) -> types.CodeType:
    """Compile top-level con code; with ``keep_result`` the trailing expression's value is kept;
    with ``background`` its top-level ``sibling`` threads are a session's background threads,
    which the input does not wait for (``_runtime.session``)."""
    tree, rewrite = pipeline.parse_con(source, filename, mode)
    if keep_result and _trailing_expression(tree) and not _ends_with_semicolon(source):
        last = tree.body[-1]
        target = ast.copy_location(ast.Name(RESULT_NAME, ast.Store()), last)
        tree.body[-1] = ast.copy_location(ast.Assign([target], last.value), last)
    return pipeline.compile_tree(tree, rewrite, filename, mode, toplevel=True,
                                 opener="background" if background else "prejoin")


def run_input(code: types.CodeType, namespace: dict):
    """Run ``code`` in ``namespace`` on a fresh scheduler; the kept result, or None.

    The code runs as the root thread of ``bootstrap`` (see ``as_function``), with
    ``namespace`` as its globals and locals.  It raises what the input raised, ``KeyboardInterrupt`` on Ctrl-C
    once every thread has unwound (docs/spec.md §1.6).
    """
    __tracebackhide__ = True  # IPython and pytest hide this frame
    from .api import bootstrap
    prepare_namespace(namespace)
    namespace.pop(RESULT_NAME, None)
    try:
        bootstrap(as_function(code, namespace))
        return namespace.get(RESULT_NAME)
    finally:
        namespace.pop(RESULT_NAME, None)


def as_function(code: types.CodeType, namespace: dict):
    """A function that runs ``code`` with ``namespace`` as its globals and locals.

    Input with con syntax compiles to a coroutine code object named ``<module>``, so the
    cactus stack reads ``bootstrap - <module> - ...``; plain input is an ordinary function,
    which ``bootstrap`` runs as its root thread all the same.
    """
    return types.FunctionType(code, namespace)


def _trailing_expression(tree: ast.AST) -> bool:
    body = getattr(tree, "body", None)
    if not body or not isinstance(body[-1], ast.Expr):
        return False
    value = body[-1].value
    return not (isinstance(value, ast.BinOp) and isinstance(value.left, ast.Name)
                and value.left.id == SIBLING_MARKER)


def _ends_with_semicolon(source: str) -> bool:
    """IPython's rule: a cell whose last token is ``;`` shows nothing."""
    last = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                                tokenize.DEDENT, tokenize.ENDMARKER):
                last = tok
    except (tokenize.TokenError, SyntaxError):
        return False
    return last is not None and last.string == ";"
