"""Bytecode layer: turn code objects that hold markers into coroutine code objects.

Every marker (a load of the attribute ``__con_await__``) is replaced with the running
interpreter's own ``await`` sequence, and every function that holds one becomes a
coroutine function (``CO_COROUTINE``).  The sequences are not written down here: they
are cut out of ``_template`` below, which this interpreter compiled itself.

Exception-table regions (3.11+) are handled by flattening the instructions into
``(instruction, handler)`` pairs, splicing, and emitting the regions afresh:

* an instruction of the template that sits in the template function's outer region
  (its StopIteration guard, PEP 479) takes the region of the site it replaces, so that
  ``throw()`` and ``close()`` reach the user's ``except`` and ``finally``;
* the template's own regions (3.12+: ``CLEANUP_THROW`` around ``YIELD_VALUE``) are
  copied per site;
* a function that becomes a coroutine gets the template's prologue
  (``RETURN_GENERATOR``) and, on 3.12+, its StopIteration guard around the body.
"""
from __future__ import annotations

import dis
import types

from bytecode import Bytecode, Instr, Label, TryBegin, TryEnd

from . import _versions
from ._tokens import AWAIT_MARKER


async def _template(awaited):
    await awaited


class _Handler:
    """A region's handler: where it jumps and how, independent of any TryBegin object."""

    __slots__ = ("target", "push_lasti", "stack_depth")

    def __init__(self, target, push_lasti, stack_depth):
        self.target, self.push_lasti, self.stack_depth = target, push_lasti, stack_depth

    @classmethod
    def of(cls, begin: TryBegin | None):
        return None if begin is None else cls(begin.target, begin.push_lasti, begin.stack_depth)


def _flatten(code_or_bytecode) -> list[tuple[object, _Handler | None]]:
    """Instructions and labels, each with the handler of the region it lies in."""
    items = []
    current = None
    handler = None
    for item in code_or_bytecode:
        if isinstance(item, TryBegin):
            current, handler = item, _Handler.of(item)
        elif isinstance(item, TryEnd):
            if item.entry is current:
                current = handler = None
        else:
            items.append((item, handler))
    return items


def _emit(items) -> list:
    """The inverse of ``_flatten``: instructions with TryBegin/TryEnd around regions.

    A TryEnd goes right after the last instruction of its region, before any label
    that follows; the ``bytecode`` library's stack-depth analysis depends on it.
    """
    out = []
    open_begin = None
    open_handler = None
    after_last_instr = 0
    for item, handler in items:
        if isinstance(item, Instr):
            if handler is not open_handler:
                if open_begin is not None:
                    out.insert(after_last_instr, TryEnd(open_begin))
                    open_begin = None
                if handler is not None:
                    open_begin = TryBegin(handler.target, handler.push_lasti, handler.stack_depth)
                    out.append(open_begin)
                open_handler = handler
            out.append(item)
            after_last_instr = len(out)
        else:
            out.append(item)
    if open_begin is not None:
        out.insert(after_last_instr, TryEnd(open_begin))
    return out


class AwaitTemplate:
    """The pieces of ``_template``'s code, ready to be copied into any function."""

    def __init__(self, code: types.CodeType):
        items = _flatten(Bytecode.from_code(code, conserve_exception_block_stackdepth=True))
        instrs = [(i, item) for i, (item, _) in enumerate(items) if isinstance(item, Instr)]
        first_resume = next(i for i, ins in instrs if ins.name == "RESUME")
        load = next(i for i, ins in instrs if ins.name in ("LOAD_FAST", "LOAD_FAST_CHECK"))
        done = next(i for i, ins in instrs if i > load and ins.name == "POP_TOP")
        returned = next(i for i, ins in instrs if i > done and ins.name.startswith("RETURN_"))
        self.guard = items[first_resume][1]  # 3.12+: the StopIteration guard; 3.11: None
        guard_start = (next(i for i, (item, _) in enumerate(items) if item is self.guard.target)
                       if self.guard else len(items))
        self.prologue = [item for item, _ in items[:first_resume] if isinstance(item, Instr)]
        self.inline = items[load + 1:done]
        self.outline = items[returned + 1:guard_start]
        self.guard_block = items[guard_start:]
        # Stack depths: the template's regions and its stack use are stated relative
        # to the depth just after the awaited value is pushed, and so are sites'.
        self.depth = _marker_depths(code, "GET_AWAITABLE")[0]
        self.stacksize = code.co_stacksize - self.depth

    def _is_guard(self, handler: _Handler | None) -> bool:
        return handler is not None and self.guard is not None and handler.target is self.guard.target

    def copy_for_site(self, location, site_handler, site_depth):
        """Inline and out-of-line items for one site whose region is ``site_handler``
        and whose stack holds ``site_depth`` items, the awaited value on top."""
        labels: dict[Label, Label] = {}
        regions: dict[int, _Handler] = {}

        def label(old):
            if old not in labels:
                labels[old] = Label()
            return labels[old]

        def handler(old):
            if old is None or self._is_guard(old):
                return site_handler
            key = id(old.target)
            if key not in regions:
                depth = old.stack_depth - self.depth + site_depth
                regions[key] = _Handler(label(old.target), old.push_lasti, depth)
            return regions[key]

        def copy(items):
            out = []
            for item, old in items:
                if isinstance(item, Label):
                    out.append((label(item), None))
                    continue
                new = item.copy()
                new.location = location
                if isinstance(new.arg, Label):
                    new.arg = label(new.arg)
                out.append((new, handler(old)))
            return out

        return copy(self.inline), copy(self.outline)

    def guard_for_function(self):
        """The prologue, a fresh StopIteration guard and its handler block (3.12+)."""
        prologue = [(ins.copy(), None) for ins in self.prologue]
        if self.guard is None:
            return prologue, None, []
        target = Label()
        block = [(target if isinstance(item, Label) and item is self.guard.target else item.copy(), None)
                 for item, _ in self.guard_block]
        return prologue, _Handler(target, self.guard.push_lasti, self.guard.stack_depth), block


def holds_markers(code: types.CodeType) -> bool:
    return AWAIT_MARKER in code.co_names


def make_nonatomic(code: types.CodeType) -> types.CodeType:
    """Rewrite ``code`` and every code object nested in it; untouched ones stay identical."""
    consts = tuple(make_nonatomic(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    nested_changed = any(a is not b for a, b in zip(consts, code.co_consts))
    if not holds_markers(code):
        return code.replace(co_consts=consts) if nested_changed else code
    replaced = {id(old): new for old, new in zip(code.co_consts, consts) if old is not new}
    return _rewrite(code, replaced)


def _rewrite(code: types.CodeType, replaced_consts: dict[int, types.CodeType]) -> types.CodeType:
    bytecode = Bytecode.from_code(code, conserve_exception_block_stackdepth=True)
    items = _flatten(bytecode)
    site_depths = iter(_marker_depths(code, AWAIT_MARKER))
    stacksize = code.co_stacksize
    out = []
    tail = []
    for item, handler in items:
        if not isinstance(item, Instr):
            out.append((item, handler))
            continue
        kind = _versions.marker_kind(item, AWAIT_MARKER)
        if kind is None:
            if item.name == "LOAD_CONST" and id(item.arg) in replaced_consts:
                item.arg = replaced_consts[id(item.arg)]
            out.append((item, handler))
            continue
        depth = next(site_depths)
        stacksize = max(stacksize, depth + TEMPLATE.stacksize)
        inline, outline = TEMPLATE.copy_for_site(item.location, handler, depth)
        out.extend(inline)
        if kind == "method":
            out.extend((ins, handler) for ins in _versions.after_method_marker(item.location))
        tail.extend(outline)
    out.extend(tail)
    if not code.co_flags & _versions.CO_COROUTINE:
        out = _into_coroutine(out)
    bytecode.clear()
    bytecode.extend(_emit(out))
    bytecode.flags = (code.co_flags & ~_versions.CO_GENERATOR_KINDS) | _versions.CO_COROUTINE
    # Every depth is known (the original regions', and the template's moved to each
    # site), so the library's own computation over the control-flow graph is skipped:
    # it is the slowest step, and it gets some exception depths wrong.
    return bytecode.to_code(stacksize=stacksize, compute_exception_stack_depths=False)


_ENDS_FLOW = frozenset({"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT",
                        "RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"})
_JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)


def _marker_depths(code: types.CodeType, marker: str) -> list[int]:
    """The stack depth at each instruction that loads ``marker`` (an attribute or, for
    the template, the opcode name), in code order, after its operand was pushed.

    The compiler leaves every instruction with one depth, so one pass along each path
    (from the start and from every exception handler) finds them all.
    """
    instructions = list(dis.get_instructions(code))
    index_at = {ins.offset: i for i, ins in enumerate(instructions)}
    starts = [(0, 0)] + [(entry.target, entry.depth + 1 + entry.lasti)
                         for entry in dis.Bytecode(code).exception_entries]
    depths: dict[int, int] = {}
    while starts:
        offset, depth = starts.pop()
        i = index_at[offset]
        while i < len(instructions) and instructions[i].offset not in depths:
            ins = instructions[i]
            depths[ins.offset] = depth
            arg = ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None
            if ins.opcode in _JUMPS:
                starts.append((ins.argval, depth + dis.stack_effect(ins.opcode, arg, jump=True)))
            if ins.opname in _ENDS_FLOW:
                break
            # A generator's frame resumes with the sent value pushed (3.11 and 3.12
            # count it as already there, 3.13 as pushed by RETURN_GENERATOR).
            generator_start = ins.opname == "RETURN_GENERATOR"
            depth += 1 if generator_start else dis.stack_effect(ins.opcode, arg, jump=False)
            i += 1
    return [depths.get(ins.offset, 1) for ins in instructions
            if ins.opname == marker or (ins.argval == marker and ins.opname in ("LOAD_ATTR", "LOAD_METHOD"))]


def _into_coroutine(items):
    prologue, guard, guard_block = TEMPLATE.guard_for_function()
    at = next(i for i, (item, _) in enumerate(items) if isinstance(item, Instr) and item.name == "RESUME")
    for ins, _ in prologue:
        ins.location = items[at][0].location
    body = items[at:]
    if guard is not None:
        body = [(item, guard if handler is None else handler) for item, handler in body]
    return items[:at] + prologue + body + guard_block


TEMPLATE = AwaitTemplate(_template.__code__)
