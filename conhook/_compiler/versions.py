"""Every per-version fact, in one place.

The version flags are computed here once and read from here by every layer.  The await
sequence itself is never written down here: the bytecode layer takes it from code that
the running interpreter compiles (see ``bytecode_layer.AwaitTemplate``).  What remains is
how a marker shows up and how a method-position marker must leave the stack for the
call that follows it.

Importing this module costs nothing beyond ``sys``: the token layer reads its flags, and
the ``bytecode`` library is imported only by the facts of the bytecode layer that need it.
"""
from __future__ import annotations

import functools
import sys

from .._reserved_names import CO_ASYNC_GENERATOR, CO_COROUTINE, CO_GENERATOR, CO_ITERABLE_COROUTINE  # noqa: F401

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)
PY314 = sys.version_info >= (3, 14)
PY315 = sys.version_info >= (3, 15)

# -- the token layer and the AST step ------------------------------------------------

TOKENIZED_FSTRINGS = PY312
"""3.12+ tokenizes f-strings (PEP 701); 3.11 gives each one as a single STRING token."""
COMPREHENSIONS_ARE_FUNCTIONS = not PY312
"""3.11 compiles list, set and dict comprehensions into functions of their own (PEP 709
inlines them on 3.12+)."""
TEMPLATE_STRINGS = PY314
"""3.14+ has template strings (PEP 750), tokenized as f-strings are."""
LAZY_IMPORTS = PY315
"""3.15+ has ``lazy import`` (PEP 810), not allowed inside ``try``."""

# -- the runner ----------------------------------------------------------------------

MODULES_HAVE_CACHED = not PY315
"""Up to 3.14 a module, ``__main__`` included, has ``__cached__``; 3.15 sets it nowhere."""

# -- the bytecode layer --------------------------------------------------------------

CO_GENERATOR_KINDS = CO_GENERATOR | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR
MARKER_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})  # the opcodes that can load a marker


@functools.cache
def name_shifts() -> dict[str, int]:
    """How far each instruction's argument is shifted past flags to give its index into
    ``co_names`` (3.11: LOAD_GLOBAL; 3.12+ also LOAD_ATTR, and LOAD_SUPER_ATTR by two;
    3.15 IMPORT_NAME by two); instructions not listed have no flags."""
    import dis
    from bytecode.instr import BITFLAG2_OPCODES, BITFLAG_OPCODES
    return {**{dis.opname[op]: 1 for op in BITFLAG_OPCODES}, **{dis.opname[op]: 2 for op in BITFLAG2_OPCODES}}


def marker_kind(instr, name_index: int) -> str | None:
    """``"attr"`` or ``"method"`` when ``instr`` (a ``ConcreteInstr``) loads the attribute
    ``co_names[name_index]``, else None."""
    name = instr.name
    if name == "LOAD_ATTR":
        arg = instr.arg
        if PY312:  # name index << 1 | is_method
            return ("method" if arg & 1 else "attr") if arg >> 1 == name_index else None
        return "attr" if arg == name_index else None
    if name == "LOAD_METHOD" and instr.arg == name_index:  # 3.11
        return "method"
    return None


def after_method_marker(location) -> list:
    """Instructions (``ConcreteInstr``) that turn the awaited value into what a method
    load leaves.

    A method load leaves two stack items for the following CALL: on 3.11 and 3.12
    ``NULL, callable`` (NULL below), on 3.13+ ``callable, NULL``.
    """
    from bytecode import ConcreteInstr
    if PY313:
        return [ConcreteInstr("PUSH_NULL", location=location)]
    return [ConcreteInstr("PUSH_NULL", location=location), ConcreteInstr("SWAP", 2, location=location)]
