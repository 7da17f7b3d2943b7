"""Bytecode layer: turn code objects that hold markers into coroutine code objects.

Every marker (a load of the attribute ``__con_await__``) is replaced with the running
interpreter's own ``await`` sequence, and every function that holds one becomes a
coroutine function (``CO_COROUTINE``).  The sequences are not written down here: they
are cut out of ``_template`` below, which this interpreter compiled itself.

The work is done on the ``bytecode`` package's concrete form (``ConcreteBytecode``):
the instructions as the interpreter stores them, inline CACHE entries included, with
jump arguments and exception-table offsets as numbers.  Turning every function into
the abstract form (labels) and back would cost more than all the rest together, and
only a few instructions per site are inserted; so the bookkeeping is done here:

* every jump and every region's handler is held as the instruction it goes to, not as
  an offset; once spliced, the code is laid out again and each jump's argument is
  recomputed, repeatedly while an argument that grew past 255 (an EXTENDED_ARG more)
  moves code;
* each instruction carries the handler of the region it lies in (3.11+), and the
  exception table is emitted afresh from runs of instructions that share one:

  - an instruction of the template that sits in the template function's outer region
    (its StopIteration guard, PEP 479) takes the region of the site it replaces, so
    that ``throw()`` and ``close()`` reach the user's ``except`` and ``finally``;
  - the template's own regions (3.12+: ``CLEANUP_THROW`` around ``YIELD_VALUE``) are
    copied per site, their depths moved to the site's;
  - a function that becomes a coroutine gets the template's prologue
    (``RETURN_GENERATOR``) and, on 3.12+, its StopIteration guard around the body.

Inserted instructions take the marker's source location, the prologue that of the
first ``RESUME``.  Code is only ever inserted, never reordered, so every jump keeps
its direction (which 3.11 spells in the opcode).
"""
from __future__ import annotations

import dis
import types

from bytecode import ConcreteBytecode, ConcreteInstr
from bytecode.concrete import ExceptionTableEntry

from . import _versions
from ._tokens import AWAIT_MARKER


async def _template(awaited):
    await awaited


class _Handler:
    """A region's handler: the instruction it goes to (an index while decoding, the
    instruction itself once spliced), whether it pushes lasti, and its stack depth."""

    __slots__ = ("target", "push_lasti", "stack_depth")

    def __init__(self, target, push_lasti, stack_depth):
        self.target, self.push_lasti, self.stack_depth = target, push_lasti, stack_depth


_ENDS_FLOW = frozenset({"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT",
                        "RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"})
_HAS_CONST = frozenset(dis.hasconst)
_HAS_NAME = frozenset(dis.hasname)
_HAS_NAME_OR_LOCAL = _HAS_NAME | frozenset(dis.haslocal) | frozenset(dis.hasfree)


class _Decoded:
    """A code object in concrete form, and for each instruction (by index): the index
    its jump goes to (``jumps``) and the handler of its region (``regions``)."""

    def __init__(self, code: types.CodeType):
        self.concrete = concrete = ConcreteBytecode.from_code(code)
        self.instrs = instrs = list(concrete)
        offsets = []
        offset = 0
        for ins in instrs:
            offsets.append(offset)
            offset += ins.size // 2
        index_at = dict(zip(offsets, range(len(offsets))))
        self.jumps = {i: index_at[ins.get_jump_target(offsets[i])]
                      for i, ins in enumerate(instrs) if ins.has_jump()}
        self.regions = regions = [None] * len(instrs)
        self.handlers = []
        for entry in concrete.exception_table:
            handler = _Handler(index_at[entry.target], entry.push_lasti, entry.stack_depth)
            self.handlers.append(handler)
            i = index_at[entry.start_offset]
            while i < len(instrs) and offsets[i] <= entry.stop_offset:
                regions[i] = handler
                i += 1

    def depths(self) -> list[int | None]:
        """The stack depth before each instruction; None where none is reachable.

        The compiler leaves every instruction with one depth, so one pass along each
        path (from the start and from every handler) finds them all.
        """
        instrs, jumps = self.instrs, self.jumps
        depths: list[int | None] = [None] * len(instrs)
        starts = [(0, 0)] + [(h.target, h.stack_depth + 1 + h.push_lasti) for h in self.handlers]
        stack_effect, has_argument = dis.stack_effect, dis.HAVE_ARGUMENT
        while starts:
            i, depth = starts.pop()
            while i < len(instrs) and depths[i] is None:
                depths[i] = depth
                ins = instrs[i]
                name = ins.name
                i += 1
                if name == "CACHE":
                    continue
                opcode = ins.opcode
                arg = ins.arg if opcode >= has_argument else None
                if i - 1 in jumps:
                    starts.append((jumps[i - 1], depth + stack_effect(opcode, arg, jump=True)))
                if name in _ENDS_FLOW:
                    break
                # A generator's frame resumes with the sent value pushed (3.11 and 3.12
                # count it as already there, 3.13 as pushed by RETURN_GENERATOR).
                depth += 1 if name == "RETURN_GENERATOR" else stack_effect(opcode, arg, jump=False)
        return depths


class AwaitTemplate:
    """The pieces of ``_template``'s code, ready to be copied into any function."""

    def __init__(self, code: types.CodeType):
        self.code = template = _Decoded(code)
        self.consts = code.co_consts
        names = [ins.name for ins in template.instrs]
        first_resume = names.index("RESUME")
        load = next(i for i, name in enumerate(names) if name in ("LOAD_FAST", "LOAD_FAST_CHECK"))
        done = names.index("POP_TOP", load)
        returned = next(i for i in range(done, len(names)) if names[i].startswith("RETURN_"))
        self.guard = template.regions[first_resume]  # 3.12+: the StopIteration guard; 3.11: None
        guard_start = self.guard.target if self.guard else len(names)
        self.prologue = range(first_resume)
        self.inline = range(load + 1, done)
        self.outline = range(returned + 1, guard_start)
        self.guard_block = range(guard_start, len(names))
        for i in [*self.inline, *self.outline, *self.guard_block]:
            if template.instrs[i].opcode in _HAS_NAME_OR_LOCAL:
                raise NotImplementedError(f"the await sequence uses {template.instrs[i].name}")
        # Stack depths: the template's regions and its stack use are stated relative
        # to the depth just after the awaited value is pushed, and so are sites'.
        self.depth = template.depths()[names.index("GET_AWAITABLE")]
        self.stacksize = code.co_stacksize - self.depth

    def _copy(self, pieces, location, const_index, jumps, region, follower=None):
        """Fresh copies of the instructions at ``pieces`` (index ranges), as a list of
        ``(instruction, handler)`` per piece; each handler is ``region(template
        handler, copies by index)``.  Their jumps are added to ``jumps``; one to the
        end of the inline sequence goes to ``follower``, what follows it at the site."""
        instrs, jump_targets = self.code.instrs, self.code.jumps
        copies = {}
        for i in (i for piece in pieces for i in piece):
            ins = instrs[i]
            arg = const_index(self.consts[ins.arg]) if ins.opcode in _HAS_CONST else ins.arg
            copies[i] = ConcreteInstr(ins.name, arg, location=ins.location if location is None else location)
        for i in copies:
            if i in jump_targets:
                target = jump_targets[i]
                if target not in copies and target != self.inline.stop:
                    raise NotImplementedError(f"the await sequence jumps out of a piece at {i}")
                jumps.append((copies[i], copies.get(target, follower)))
        regions = self.code.regions
        return [[(copies[i], region(regions[i], copies)) for i in piece] for piece in pieces]

    def copy_for_site(self, location, site_handler, site_depth, follower, const_index, jumps):
        """Inline and out-of-line ``(instruction, handler)`` items for one site whose
        region is ``site_handler``, whose stack holds ``site_depth`` items, the awaited
        value on top, and whose code goes on at ``follower``."""
        regions = {}

        def region(old, copies):
            if old is None or old.target == self.guard.target:  # the guard's entries
                return site_handler
            if old not in regions:
                depth = old.stack_depth - self.depth + site_depth
                regions[old] = _Handler(copies[old.target], old.push_lasti, depth)
            return regions[old]

        inline, outline = self._copy((self.inline, self.outline), location, const_index, jumps,
                                     region, follower)
        return inline, outline

    def guard_for_function(self, location, const_index, jumps):
        """The prologue (at ``location``), a fresh StopIteration guard and its handler
        block (3.12+; on 3.11 None and empty)."""
        (prologue,) = self._copy((self.prologue,), location, const_index, jumps, lambda old, copies: None)
        if self.guard is None:
            return prologue, None, []
        (block,) = self._copy((self.guard_block,), None, const_index, jumps, lambda old, copies: None)
        guard = _Handler(block[0][0], self.guard.push_lasti, self.guard.stack_depth)
        return prologue, guard, block


def holds_markers(code: types.CodeType) -> bool:
    return AWAIT_MARKER in code.co_names


def make_nonatomic(code: types.CodeType) -> types.CodeType:
    """Rewrite ``code`` and every code object nested in it; untouched ones stay identical."""
    consts = tuple(make_nonatomic(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    nested_changed = any(a is not b for a, b in zip(consts, code.co_consts))
    if not holds_markers(code):
        return code.replace(co_consts=consts) if nested_changed else code
    return _rewrite(code, consts)


def _rewrite(code: types.CodeType, consts: tuple) -> types.CodeType:
    decoded = _Decoded(code)
    instrs = decoded.instrs
    depths = decoded.depths()
    consts = list(consts)

    def const_index(value):
        index = next((i for i, c in enumerate(consts) if c is value), None)
        if index is None:
            consts.append(value)
            index = len(consts) - 1
        return index

    # The function's handlers, their targets still indices (resolved below).
    handlers = {h: _Handler(h.target, h.push_lasti, h.stack_depth) for h in decoded.handlers}
    names = list(code.co_names)
    marker = names.index(AWAIT_MARKER)
    naming_last = []  # instructions that name names[-1]; see _drop_name
    marker_named_otherwise = False
    stacksize = code.co_stacksize
    out, tail = [], []
    jumps = []  # (jump, target): the target an index into instrs until resolved
    moved = {}  # index into instrs -> the instruction that now stands there
    i = 0
    while i < len(instrs):
        ins = instrs[i]
        handler = handlers[decoded.regions[i]] if decoded.regions[i] else None
        kind = _versions.marker_kind(ins, marker) if ins.name in _versions.MARKER_OPS else None
        if kind is None:
            if ins.has_jump():
                if ins.size > 2:  # from_code keeps the size it had; let it size itself
                    ins = moved[i] = ConcreteInstr(ins.name, ins.arg, location=ins.location)
                jumps.append((ins, decoded.jumps[i]))
            elif ins.opcode in _HAS_NAME:
                named = ins.arg >> _versions.NAME_SHIFT.get(ins.name, 0)
                marker_named_otherwise |= named == marker
                if named == len(names) - 1:
                    naming_last.append(ins)
            out.append((ins, handler))
            i += 1
            continue
        depth = 1 if depths[i] is None else depths[i]
        stacksize = max(stacksize, depth + TEMPLATE.stacksize)
        after = _versions.after_method_marker(ins.location) if kind == "method" else []
        site = i
        i += 1
        while i < len(instrs) and instrs[i].name == "CACHE":  # the marker's own
            i += 1
        inline, outline = TEMPLATE.copy_for_site(ins.location, handler, depth, after[0] if after else i,
                                                 const_index, jumps)
        moved[site] = inline[0][0]
        out.extend(inline)
        out.extend((extra, handler) for extra in after)
        tail.extend(outline)
    out.extend(tail)
    if not marker_named_otherwise:
        _drop_name(names, marker, naming_last)

    def resolve(target):
        return target if isinstance(target, ConcreteInstr) else moved.get(target, instrs[target])

    for handler in handlers.values():
        handler.target = resolve(handler.target)
    jumps = [(jump, resolve(target)) for jump, target in jumps]
    if not code.co_flags & _versions.CO_COROUTINE:
        out = _into_coroutine(out, const_index, jumps)

    instructions = [ins for ins, _ in out]
    offsets, position = _layout(instructions, jumps)
    concrete = decoded.concrete
    concrete[:] = instructions
    concrete.consts = consts
    concrete.names = names
    concrete.exception_table = _exception_table([handler for _, handler in out], offsets, position)
    concrete.flags = (code.co_flags & ~_versions.CO_GENERATOR_KINDS) | _versions.CO_COROUTINE
    # Every depth is known (the original regions', and the template's moved to each
    # site), so the library's own computation over the control-flow graph is skipped.
    return concrete.to_code(stacksize=stacksize, compute_exception_stack_depths=False)


def _drop_name(names: list[str], index: int, naming_last) -> None:
    """Take ``names[index]`` out of ``names`` by moving the last name into its place;
    ``naming_last`` are all the instructions that name the last one."""
    last = names.pop()
    if index == len(names):
        return
    names[index] = last
    for ins in naming_last:
        shift = _versions.NAME_SHIFT.get(ins.name, 0)
        ins.arg = index << shift | ins.arg & ((1 << shift) - 1)


def _into_coroutine(items, const_index, jumps):
    at = next(i for i, (ins, _) in enumerate(items) if ins.name == "RESUME")
    prologue, guard, guard_block = TEMPLATE.guard_for_function(items[at][0].location, const_index, jumps)
    body = items[at:]
    if guard is not None:
        body = [(ins, guard if handler is None else handler) for ins, handler in body]
    return items[:at] + prologue + body + guard_block


def _layout(instrs: list[ConcreteInstr], jumps) -> tuple[list[int], dict[int, int]]:
    """Offsets (in code units, the end last) of ``instrs`` with every jump's argument
    set to reach its target, and the index of each instruction by ``id``.

    Inserted code only lengthens jumps; an argument that grows past a multiple of 8
    bits makes its jump longer (EXTENDED_ARG), which moves later code and may lengthen
    other jumps in turn, so the layout is repeated until no size changes.
    """
    position = {id(ins): i for i, ins in enumerate(instrs)}
    while True:
        offsets = []
        offset = 0
        for ins in instrs:
            offsets.append(offset)
            offset += ins.size // 2
        offsets.append(offset)
        grown = False
        for jump, target in jumps:
            there = offsets[position[id(target)]]
            after = offsets[position[id(jump)]] + jump.size // 2 + jump.use_cache_opcodes()
            if jump.is_forward_rel_jump():
                arg = there - after
            elif jump.is_backward_rel_jump():
                arg = after - there
            else:
                arg = there
            if arg < 0:
                raise AssertionError(f"{jump.name} would have to change direction")
            if arg != jump.arg:
                size = jump.size
                jump.arg = arg
                grown = grown or jump.size != size
        if not grown:
            return offsets, position


def _exception_table(handlers, offsets, position) -> list[ExceptionTableEntry]:
    """One entry per run of instructions that share a handler (``handlers[i]`` is
    that of the instruction at ``offsets[i]``)."""
    table = []
    current, start = None, 0
    for i, handler in enumerate([*handlers, None]):
        if handler is current:
            continue
        if current is not None:
            target = offsets[position[id(current.target)]]
            table.append(ExceptionTableEntry(offsets[start], offsets[i] - 1, target,
                                             current.stack_depth, current.push_lasti))
        current, start = handler, i
    return table


TEMPLATE = AwaitTemplate(_template.__code__)
