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
  recomputed, repeatedly while an argument that crossed 255 (an EXTENDED_ARG more or
  less) moves code;
* each instruction carries the handler of the region it lies in (3.11+), and the
  exception table is emitted afresh from runs of instructions that share one:

  - an instruction of the template that sits in the template function's outer region
    (its StopIteration guard, PEP 479) takes the region of the site it replaces, so
    that ``throw()`` and ``close()`` reach the user's ``except`` and ``finally``;
  - the template's own regions (3.12+: ``CLEANUP_THROW`` around ``YIELD_VALUE``) are
    copied per site, their depths moved to the site's;
  - a function that becomes a coroutine gets the template's prologue
    (``RETURN_GENERATOR``) and, on 3.12+, its StopIteration guard around the body.

On 3.14+ the compiler may have left borrowed references (``LOAD_FAST_BORROW``) on the
stack below a site, where it would have made them strong for a real ``await``.  They stay
valid while the coroutine is suspended, by CPython's own rules: the local that supports
each one lives until an instruction of this frame kills it, and a write through
``f_locals`` keeps the old value alive.

Inserted instructions take the marker's source location, the prologue that of the
first ``RESUME``.  Code is only ever inserted, never reordered, so every jump keeps
its direction (which 3.11 spells in the opcode).
"""
from __future__ import annotations

import dis
import types
from itertools import accumulate
from operator import attrgetter

from bytecode import ConcreteBytecode, ConcreteInstr
from bytecode.concrete import ExceptionTableEntry

from . import versions
from .._reserved_names import AWAIT_MARKER


async def _template(awaited):
    await awaited


class _Handler:
    """A region's handler: the instruction it goes to, whether it pushes lasti, and
    its stack depth."""

    __slots__ = ("target", "push_lasti", "stack_depth")

    def __init__(self, target, push_lasti, stack_depth):
        self.target, self.push_lasti, self.stack_depth = target, push_lasti, stack_depth


_ENDS_FLOW = frozenset({"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT",
                        "RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"})
_HAS_CONST = frozenset(dis.hasconst)
_NAMING = frozenset(dis.opname[op] for op in dis.hasname)
_JUMPING = frozenset(dis.opname[op] for op in {*dis.hasjrel, *dis.hasjabs})
_HAS_NAME_OR_LOCAL = frozenset(dis.hasname) | frozenset(dis.haslocal) | frozenset(dis.hasfree)


class _Decoded:
    """A code object in concrete form: its instructions, and by index their names,
    opcodes and arguments, where each one's jump goes (``jumps``, an index), and the
    handler of the region each lies in (``regions``; handlers hold the instruction)."""

    def __init__(self, code: types.CodeType):
        self.concrete = concrete = ConcreteBytecode.from_code(code)
        self.instrs = instrs = list(concrete)
        self.names = list(map(attrgetter("name"), instrs))
        self.opcodes = list(map(dis.opmap.__getitem__, self.names))
        self.args = list(map(attrgetter("arg"), instrs))
        offsets = list(accumulate(map(attrgetter("size"), instrs), initial=0))  # in bytes
        index_at = dict(zip(offsets, range(len(offsets))))
        self.jumps = {i: index_at[2 * instrs[i].get_jump_target(offsets[i] // 2)]
                      for i, name in enumerate(self.names) if name in _JUMPING}
        self.regions = regions = [None] * len(instrs)
        self.handlers = []  # with the index each starts at, for depths()
        for entry in concrete.exception_table:
            start = index_at[2 * entry.target]
            handler = _Handler(instrs[start], entry.push_lasti, entry.stack_depth)
            self.handlers.append((start, handler))
            i = index_at[2 * entry.start_offset]
            while offsets[i] <= 2 * entry.stop_offset:
                regions[i] = handler
                i += 1

    def depths(self) -> list[int | None]:
        """The stack depth before each instruction; None where none is reachable.

        The compiler leaves every instruction with one depth, so one pass along each
        path (from the start and from every handler) finds them all.
        """
        names, opcodes, args, jumps = self.names, self.opcodes, self.args, self.jumps
        depths: list[int | None] = [None] * len(names)
        starts = [(0, 0)] + [(i, h.stack_depth + 1 + h.push_lasti) for i, h in self.handlers]
        stack_effect, has_argument = dis.stack_effect, dis.HAVE_ARGUMENT
        while starts:
            i, depth = starts.pop()
            while i < len(names) and depths[i] is None:
                depths[i] = depth
                name = names[i]
                if name != "CACHE":
                    opcode = opcodes[i]
                    arg = args[i] if opcode >= has_argument else None
                    if i in jumps:
                        starts.append((jumps[i], depth + stack_effect(opcode, arg, jump=True)))
                    if name in _ENDS_FLOW:
                        break
                    # A generator's frame resumes with the sent value pushed (3.11 and
                    # 3.12 count it as already there, 3.13 as pushed by RETURN_GENERATOR).
                    depth += 1 if name == "RETURN_GENERATOR" else stack_effect(opcode, arg, jump=False)
                i += 1
        return depths


class AwaitTemplate:
    """The pieces of ``_template``'s code, ready to be copied into any function."""

    def __init__(self, code: types.CodeType):
        self.code = template = _Decoded(code)
        self.consts = code.co_consts
        names = template.names
        first_resume = names.index("RESUME")
        load = names.index("GET_AWAITABLE") - 1  # loads ``awaited`` (LOAD_FAST, 3.14: LOAD_FAST_BORROW)
        done = names.index("POP_TOP", load)
        returned = next(i for i in range(done, len(names)) if names[i].startswith("RETURN_"))
        self.guard = template.regions[first_resume]  # 3.12+: the StopIteration guard; 3.11: None
        guard_start = template.instrs.index(self.guard.target) if self.guard else len(names)
        self.prologue = range(first_resume)
        self.inline = range(load + 1, done)
        self.outline = range(returned + 1, guard_start)
        self.guard_block = range(guard_start, len(names))
        for i in [*self.inline, *self.outline, *self.guard_block]:
            if template.opcodes[i] in _HAS_NAME_OR_LOCAL:
                raise NotImplementedError(f"the await sequence uses {names[i]}")
        # Stack depths: the template's regions and its stack use are stated relative
        # to the depth just after the awaited value is pushed, and so are sites'.
        self.depth = template.depths()[names.index("GET_AWAITABLE")]
        self.stacksize = code.co_stacksize - self.depth

    def _copy(self, pieces, location, const_index, jumps, region, follower=None):
        """Fresh copies of the instructions at ``pieces`` (ranges of indices), each
        piece as ``(instructions, handlers)``; a handler is ``region(template handler,
        copies by id of the template's instruction)``.  Their jumps are added to
        ``jumps``; one to the end of the inline sequence goes to ``follower``, what
        follows it at the site."""
        template = self.code
        copies = {}
        for i in (i for piece in pieces for i in piece):
            ins = template.instrs[i]
            arg = const_index(self.consts[ins.arg]) if ins.opcode in _HAS_CONST else ins.arg
            copies[id(ins)] = ConcreteInstr(ins.name, arg, location=ins.location if location is None else location)
        for i in (i for piece in pieces for i in piece):
            if i in template.jumps:
                target = template.instrs[template.jumps[i]]
                if id(target) not in copies and template.jumps[i] != self.inline.stop:
                    raise NotImplementedError(f"the await sequence jumps out of its pieces at {i}")
                jumps.append((copies[id(template.instrs[i])], copies.get(id(target), follower)))
        return [([copies[id(template.instrs[i])] for i in piece],
                 [region(template.regions[i], copies) for i in piece]) for piece in pieces]

    def copy_for_site(self, location, site_handler, site_depth, follower, const_index, jumps):
        """Inline and out-of-line pieces, each as ``(instructions, handlers)``, for one
        site whose region is ``site_handler``, whose stack holds ``site_depth`` items,
        the awaited value on top, and whose code goes on at ``follower``."""
        regions = {}

        def region(old, copies):
            if old is None or old.target is self.guard.target:  # the guard's entries
                return site_handler
            if old not in regions:
                depth = old.stack_depth - self.depth + site_depth
                regions[old] = _Handler(copies[id(old.target)], old.push_lasti, depth)
            return regions[old]

        return self._copy((self.inline, self.outline), location, const_index, jumps, region, follower)

    def guard_for_function(self, location, const_index, jumps):
        """The prologue's instructions (at ``location``), a fresh StopIteration guard
        and its handler block's instructions (3.12+; on 3.11 None and empty)."""
        def no_region(old, copies):
            return None

        [(prologue, _)] = self._copy((self.prologue,), location, const_index, jumps, no_region)
        if self.guard is None:
            return prologue, None, []
        [(block, _)] = self._copy((self.guard_block,), None, const_index, jumps, no_region)
        return prologue, _Handler(block[0], self.guard.push_lasti, self.guard.stack_depth), block


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
    instrs, opnames, args = list(decoded.instrs), decoded.names, decoded.args
    consts = list(consts)

    def const_index(value):
        index = next((i for i, c in enumerate(consts) if c is value), None)
        if index is None:
            consts.append(value)
            index = len(consts) - 1
        return index

    names = list(code.co_names)
    marker = names.index(AWAIT_MARKER)
    sites = [(i, kind) for i, name in enumerate(opnames)
             if name in versions.MARKER_OPS and (kind := versions.marker_kind(instrs[i], marker))]
    moved = {}  # id of an instruction of ``code`` -> the one that now stands in its place
    jumps = []  # (jump, target instruction)
    for i, target in decoded.jumps.items():
        if instrs[i].size > 2:  # from_code keeps the size it had; let it size itself
            moved[id(instrs[i])] = instrs[i] = ConcreteInstr(opnames[i], args[i], location=instrs[i].location)
        jumps.append((instrs[i], decoded.instrs[target]))

    # The handler of each instruction's region; on 3.12+ a function that becomes a
    # coroutine has the StopIteration guard around its body (from the first RESUME).
    regions = decoded.regions
    at = opnames.index("RESUME")
    prologue = guard = guard_block = None
    if not code.co_flags & versions.CO_COROUTINE:
        prologue, guard, guard_block = TEMPLATE.guard_for_function(instrs[at].location, const_index, jumps)
        if guard is not None:
            regions = regions[:at] + [region or guard for region in regions[at:]]

    depths = decoded.depths()
    stacksize = code.co_stacksize
    out, out_regions = [], []  # the instructions and the handler of each
    tail, tail_regions = [], []
    done = 0
    for site, kind in sites:
        ins, handler = instrs[site], regions[site]
        out += instrs[done:site]
        out_regions += regions[done:site]
        done = site + 1
        while done < len(instrs) and opnames[done] == "CACHE":  # the marker's own
            done += 1
        depth = 1 if depths[site] is None else depths[site]
        stacksize = max(stacksize, depth + TEMPLATE.stacksize)
        after = versions.after_method_marker(ins.location) if kind == "method" else []
        (inline, inline_regions), (outline, outline_regions) = TEMPLATE.copy_for_site(
            _awaited_location(instrs, opnames, site), handler, depth, after[0] if after else instrs[done],
            const_index, jumps)
        moved[id(ins)] = inline[0]
        out += inline + after
        out_regions += inline_regions + [handler] * len(after)
        tail += outline
        tail_regions += outline_regions
    out += instrs[done:] + tail
    out_regions += regions[done:] + tail_regions
    if prologue is not None:
        out[at:at] = prologue
        out_regions[at:at] = [None] * len(prologue)
    if guard is not None:
        out += guard_block
        out_regions += [None] * len(guard_block)

    for handler in {id(h): h for h in out_regions if h is not None}.values():
        handler.target = moved.get(id(handler.target), handler.target)
    jumps = [(jump, moved.get(id(target), target)) for jump, target in jumps]
    _drop_marker_name(names, marker, len(sites), instrs, opnames, args)

    offsets, position = _layout(out, jumps)
    concrete = decoded.concrete
    concrete[:] = out
    concrete.consts = consts
    concrete.names = names
    concrete.exception_table = _exception_table(out_regions, offsets, position)
    concrete.flags = (code.co_flags & ~versions.CO_GENERATOR_KINDS) | versions.CO_COROUTINE
    # Every depth is known (the original regions', and the template's moved to each
    # site), so the library's own computation over the control-flow graph is skipped.
    return concrete.to_code(stacksize=stacksize, compute_exception_stack_depths=False)


def _awaited_location(instrs, opnames, site):
    """Where the await sequence of the marker at ``site`` stands: the span of what it awaits
    (``f(a)`` of ``f@(a)``, first line to last), as CPython gives its own ``await`` the span of
    the whole expression.  The marker's load alone has its last line only (CPython puts an
    attribute's load on the line of the attribute), so a call over several lines would report
    its last line, without columns.  The instruction before the marker made the awaited value;
    its span is taken where it ends on the marker's line, where the marker (if its columns are
    known) ends too."""
    marker = instrs[site].location
    i = site - 1
    while i >= 0 and opnames[i] == "CACHE":
        i -= 1
    made = instrs[i].location if i >= 0 else None
    if (made is not None and marker is not None and made.lineno is not None
            and made.end_lineno == marker.end_lineno
            and marker.end_col_offset in (None, made.end_col_offset)):
        return made
    return marker


def _drop_marker_name(names: list[str], marker: int, sites: int, instrs, opnames, args) -> None:
    """Take the marker's name out of ``names`` unless something other than the
    ``sites`` markers names it, by moving the last name into its place (and
    renumbering what names that one)."""
    naming = [i for i, name in enumerate(opnames) if name in _NAMING]
    named = [args[i] >> versions.name_shifts().get(opnames[i], 0) for i in naming]
    if named.count(marker) > sites:
        return
    last = len(names) - 1
    names[marker] = names[last]
    names.pop()
    for i, index in zip(naming, named):
        if index == last != marker:
            shift = versions.name_shifts().get(opnames[i], 0)
            instrs[i].arg = marker << shift | args[i] & ((1 << shift) - 1)


def _layout(instrs: list[ConcreteInstr], jumps) -> tuple[list[int], dict[int, int]]:
    """Offsets of ``instrs`` in bytes (the end last), with every jump's argument set
    to reach its target, and the index of each instruction by ``id``.

    Splicing changes distances (on 3.11 a site is longer than the marker it replaces,
    on 3.12+ shorter than the marker with its caches); an argument that crosses a
    multiple of 8 bits changes its jump's size (EXTENDED_ARG), which moves later code
    and may change other arguments in turn, so the layout is repeated until no size
    changes.
    """
    position = dict(zip(map(id, instrs), range(len(instrs))))
    # Per jump: where it and its target stand, its cache entries, its direction.
    jumps = [(jump, position[id(jump)], position[id(target)], jump.use_cache_opcodes(),
              1 if jump.is_forward_rel_jump() else -1 if jump.is_backward_rel_jump() else 0)
             for jump, target in jumps]
    while True:
        offsets = list(accumulate(map(attrgetter("size"), instrs), initial=0))
        grown = False
        for jump, here, there, caches, direction in jumps:
            after = offsets[here + 1] // 2 + caches
            arg = (offsets[there] // 2 - after) * direction if direction else offsets[there] // 2
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
    that of the instruction at ``offsets[i]``, in bytes)."""
    table = []
    current, start = None, 0
    for i, handler in enumerate([*handlers, None]):
        if handler is current:
            continue
        if current is not None:
            target = offsets[position[id(current.target)]] // 2
            table.append(ExceptionTableEntry(offsets[start] // 2, offsets[i] // 2 - 1, target,
                                             current.stack_depth, current.push_lasti))
        current, start = handler, i
    return table


TEMPLATE = AwaitTemplate(_template.__code__)
