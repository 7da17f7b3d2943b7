"""Every per-version fact of the bytecode layer, in one place.

The await sequence itself is never written down here: the bytecode layer takes it
from code that the running interpreter compiles (see ``_bytecode.AwaitTemplate``).
What remains is how a marker shows up and how a method-position marker must leave
the stack for the call that follows it.
"""
from __future__ import annotations

import sys

from bytecode import Instr

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)

CO_COROUTINE = 0x0080
CO_GENERATOR_KINDS = 0x0020 | 0x0100 | 0x0200  # generator, iterable coroutine, async generator


def marker_kind(instr: Instr, marker: str) -> str | None:
    """``"attr"`` or ``"method"`` when ``instr`` loads the marker attribute, else None."""
    name = instr.name
    if name == "LOAD_ATTR":
        arg = instr.arg
        if PY312:  # (is_method, name)
            return ("method" if arg[0] else "attr") if arg[1] == marker else None
        return "attr" if arg == marker else None
    if name == "LOAD_METHOD" and instr.arg == marker:  # 3.11
        return "method"
    return None


def after_method_marker(location) -> list[Instr]:
    """Instructions that turn the awaited value into what a method load leaves.

    A method load leaves two stack items for the following CALL: on 3.11 and 3.12
    ``NULL, callable`` (NULL below), on 3.13 ``callable, NULL``.
    """
    if PY313:
        return [Instr("PUSH_NULL", location=location)]
    return [Instr("PUSH_NULL", location=location), Instr("SWAP", 2, location=location)]
