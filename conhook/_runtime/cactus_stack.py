"""The cactus stack (docs/spec.md §1.7): ``tree()`` and the SIGUSR1 dump.

Each thread is drawn as its chain of non-atomic calls joined by `` - ``, from its coroutine
through ``cr_await``; the root thread's chain starts with ``bootstrap``.  A thread started by a
prejoin scope is drawn on its own line under the frame that opened the scope, after a ``|`` in
the column just after that frame's name::

    bootstrap - main - accept
                     | echo - read
                     | echo - read

A scope is matched to its frame through the frame's ``__con_scope__`` local (the name the
compiler gives it); a scope no frame claims is drawn under the innermost frame.  A parked
thread ends with what it waits for (``sleep``, ``wait``, ``get``, ...), drawn once: the label
of the trap it parked on, unless conhook's own call of that name (``Queue.get``, ``to_thread``)
is its innermost frame already.

A chain of threads, each started by the one above (a crawler, a pipeline), may be thousands
deep: the drawing is made without recursion, a run of identical lines shows its first three
and then how many more there are (as CPython's tracebacks do for a deep recursion), and a line
that would start past column 100 starts at the left margin again, after a line naming the
line it hangs off.  So the drawing's size grows with the number of threads, not its square.
"""
from __future__ import annotations

import signal
import sys
import types

from .._reserved_names import CO_COROUTINE, CO_ITERABLE_COROUTINE, SCOPE_NAME
from .kernel import current_kernel, state
from .prejoin import Scope
from .results import THREAD_WRAPPERS

_HIDDEN = {Scope.failed.__code__, *THREAD_WRAPPERS}


def hide(function):
    """Leave `function`'s frames out of the drawing: conhook's wrapper around a thread's call."""
    _HIDDEN.add(function.__code__)


def _chain(thread, running):
    """[(name, frame or None)] of the thread's non-atomic calls, outermost first.

    `running` is false for a parked thread, else the innermost Python frame of the running
    one (the watchdog draws it from another OS thread).
    """
    items = []
    obj = thread.coro
    if running:
        # A running coroutine has no cr_await: walk the Python stack down to its frame.
        top = obj.cr_frame
        frame = running
        while frame is not None:
            if frame.f_code.co_flags & CO_COROUTINE and frame.f_code not in _HIDDEN and \
                    not _internal(frame):
                items.append((frame.f_code.co_name, frame))
            if frame is top:
                break
            frame = frame.f_back
        items.reverse()
        if _internal(top) and top.f_code not in _HIDDEN:
            items.insert(0, (obj.__name__, top))  # a thread running an ordinary function
        return items
    while obj is not None:
        if isinstance(obj, types.CoroutineType):
            if obj.cr_code not in _HIDDEN:
                items.append((obj.__name__, obj.cr_frame))
            obj = obj.cr_await
        elif isinstance(obj, types.GeneratorType):
            if obj.gi_code.co_flags & CO_ITERABLE_COROUTINE:  # a @types.coroutine
                items.append((obj.__name__, obj.gi_frame))
            obj = obj.gi_yieldfrom
        else:
            break
    label = None if running else getattr(thread.parked_on, "label", None)
    if label and not (items and items[-1][0] == label and _internal(items[-1][1])):
        items.append((label, None))  # (a wait of conhook's that is a coroutine names it already)
    return items


def _internal(frame):
    return frame is not None and frame.f_globals.get("__name__", "").startswith("conhook.")


def _scope_frames(thread, chain):
    """{chain index: [scopes]} placing each open prejoin scope of the thread under its frame."""
    placed = {}
    scopes = [s for s in (thread.scopes or ()) if isinstance(s, Scope)]
    for scope in scopes:
        where = None
        for i, (_, frame) in enumerate(chain):
            if frame is not None:
                try:
                    if frame.f_locals.get(SCOPE_NAME) is scope:
                        where = i
                except Exception:  # noqa: BLE001  (a frame that changes under us is skipped)
                    pass
        if where is None:
            where = max(len(chain) - 1, 0)
        placed.setdefault(where, []).append(scope)
    return placed


# A run of identical lines, each thread started by the one above (a chain of threads, each
# starting the next), shows its first few lines and then says how many more there are, as
# CPython's tracebacks do for a deep recursion.  A thread whose line would start further right
# than _MAX_COLUMN is drawn from the left margin again, after a line saying so: a chain
# thousands of threads deep draws in space proportional to its depth, not to its square.
_REPEATS_SHOWN = 3
_MAX_COLUMN = 100


class _Line:
    """One thread's line: its names, where each starts, and its scopes' running threads."""
    __slots__ = ("names", "children")

    def __init__(self, kernel, thread, names_before, frame):
        chain = _chain(thread, thread is kernel.current and frame)
        self.names = names_before + [name for name, _ in chain]
        offset = len(names_before)
        starts = []
        col = 0
        for name in self.names:
            starts.append(col)
            col += len(name) + 3
        # [(bar, child)], the bar's column relative to the line's start.
        self.children = children = []
        for index, scopes in sorted(_scope_frames(thread, chain).items()):
            i = index + offset
            bar = starts[i] + len(self.names[i]) + 1 if self.names else 0
            for scope in scopes:
                children.extend((bar, child) for child in scope.running())

    @property
    def text(self):
        return " - ".join(self.names) if self.names else "?"


def _draw(kernel, root, frame, first="bootstrap"):
    """The lines of the cactus stack under `root`, drawn with a stack of our own (no recursion)."""
    lines = []
    stack = [(root, 0, [first], None)]  # (thread, column of its "| ", names before, parent)
    while stack:
        thread, column, names_before, parent = stack.pop()
        line = _Line(kernel, thread, names_before, frame)
        if parent is None:
            lines.append(line.text)
        else:
            if column > _MAX_COLUMN:
                lines.append(f"[the threads below hang off the line '{parent}' above; drawn from "
                             f"the left margin]")
                column = 0
            lines.append(" " * column + "| " + line.text)
            column += 2
        # A run of identical lines, each thread started by the one above.
        shown, repeated = 1, 0
        while len(line.children) == 1 and parent is not None:
            bar, child = line.children[0]
            below = _Line(kernel, child, [], frame)
            if below.text != line.text:
                break
            if shown < _REPEATS_SHOWN:
                column += bar + 2
                lines.append(" " * (column - 2) + "| " + below.text)
                shown += 1
            else:
                repeated += 1
            line = below
        if repeated:
            lines.append(" " * (column - 2) + f"[previous line repeated {repeated:,} more times, "
                         f"each started by the one above]")
        for bar, child in reversed(line.children):
            stack.append((child, column + bar, [], line.text))
    return lines


def tree(kernel=None, frame=None):
    """The cactus stack of the running program, as a string (docs/spec.md §1.7).

    The root thread's chain of non-atomic calls comes first (``bootstrap - main - ...``); each
    thread started by ``sibling`` follows on its own line, under the frame that started it.
    Threads started from outside the kernel come last, each on a line of its own: by an OS
    thread with a token (``from_thread - fn - ...``), by asyncio code (``from_aio - fn - ...``,
    hosted), a session's inputs (``bootstrap - <module> - ...``).
    `frame` is the innermost Python frame of the OS thread that runs `kernel` (default: the
    caller's); only the watchdog, which draws from another OS thread, passes it.
    """
    if frame is None:
        frame = sys._getframe(1)
    if kernel is None:
        kernel = current_kernel()
    root = kernel.root
    lines = ["bootstrap"] if root is None or root.coro is None else _draw(kernel, root, frame)
    for thread, name in list(kernel.outside.threads.items()):  # started from outside the
        if thread.coro is not None:                            # kernel: drawn after
            lines.extend(_draw(kernel, thread, frame, name))
    return "\n".join(line.rstrip() for line in lines)


def _dump(signum, frame):
    dump_cactus_stack(state.kernel, frame)


def dump_cactus_stack(kernel, frame):
    """Write `kernel`'s cactus stack (None: no scheduler runs) to stderr, `frame` the innermost
    Python frame of the OS thread that runs it (as ``tree``).  For signal handlers: it never
    raises.  (A handler runs between any two bytecodes, possibly while the kernel is half-way
    through an update: whatever goes wrong here must not reach the interrupted program.)"""
    try:
        text = tree(kernel, frame) if kernel is not None else "(no conhook scheduler is running)"
        sys.stderr.write(f"conhook: cactus stack\n{text}\n")
        sys.stderr.flush()
    except Exception as exc:  # noqa: BLE001  (a signal handler must not raise)
        try:
            sys.stderr.write(f"conhook: could not draw the cactus stack: {exc!r}\n")
        except Exception:  # noqa: BLE001  (a signal handler must not raise)
            pass


def install_dump_signal(signum=getattr(signal, "SIGUSR1", None)):
    """Make `signum` (SIGUSR1) print the cactus stack of the running program to stderr.

    Call it from the main OS thread (the runner does, for ``python -m conhook``).  Returns the
    previous handler.  Does nothing and returns None where the signal does not exist.
    """
    if signum is None:
        return None
    return signal.signal(signum, _dump)
