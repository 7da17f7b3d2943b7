"""Every per-version fact of the bytecode layer, in one place.

The await sequence itself is never written down here: the bytecode layer takes it
from code that the running interpreter compiles (see ``bytecode_layer.AwaitTemplate``).
What remains is how a marker shows up and how a method-position marker must leave
the stack for the call that follows it.
"""
from __future__ import annotations

import dis
import sys

from bytecode import ConcreteInstr
from bytecode.instr import BITFLAG2_OPCODES, BITFLAG_OPCODES

from .._reserved_names import CO_ASYNC_GENERATOR, CO_COROUTINE, CO_GENERATOR, CO_ITERABLE_COROUTINE  # noqa: F401

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)

CO_GENERATOR_KINDS = CO_GENERATOR | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR
NAME_SHIFT = {**{dis.opname[op]: 1 for op in BITFLAG_OPCODES}, **{dis.opname[op]: 2 for op in BITFLAG2_OPCODES}}
"""How far an instruction's argument is shifted past flags to give its index into
``co_names`` (3.11: LOAD_GLOBAL; 3.12+ also LOAD_ATTR, and LOAD_SUPER_ATTR by two)."""
MARKER_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})  # the opcodes that can load a marker


def marker_kind(instr: ConcreteInstr, name_index: int) -> str | None:
    """``"attr"`` or ``"method"`` when ``instr`` loads the attribute ``co_names[name_index]``,
    else None."""
    name = instr.name
    if name == "LOAD_ATTR":
        arg = instr.arg
        if PY312:  # name index << 1 | is_method
            return ("method" if arg & 1 else "attr") if arg >> 1 == name_index else None
        return "attr" if arg == name_index else None
    if name == "LOAD_METHOD" and instr.arg == name_index:  # 3.11
        return "method"
    return None


def after_method_marker(location) -> list[ConcreteInstr]:
    """Instructions that turn the awaited value into what a method load leaves.

    A method load leaves two stack items for the following CALL: on 3.11 and 3.12
    ``NULL, callable`` (NULL below), on 3.13 ``callable, NULL``.
    """
    if PY313:
        return [ConcreteInstr("PUSH_NULL", location=location)]
    return [ConcreteInstr("PUSH_NULL", location=location), ConcreteInstr("SWAP", 2, location=location)]
