"""Messages for common slips that fail somewhere else, with words that do not name the slip.

Three mistakes fail deep in Python or in another library, with a message that says nothing of
conhook:

* ``print@("x")``, ``with con.timeout@(1):`` — ``@()`` on an ordinary function: Python's
  "object NoneType can't be used in 'await' expression".  Told: the function is not non-atomic,
  call it without ``@``.
* ``asyncio.sleep@(0.1)``, ``asyncio.Queue().get@()`` — asyncio code (or trio's, anyio's)
  awaited by a conhook thread: "no running event loop", an ``AttributeError`` inside asyncio,
  or conhook's own "yielded None".  Replaced by the ``TypeError`` docs/spec.md §1.1 promises:
  the line that awaited it, what to use instead (for asyncio: ``con.aio@``, hosted).
* ``f@(x)`` in a module that does not opt in (docs/spec.md §2.1): there ``@`` is matrix
  multiplication, and Python says "unsupported operand type(s) for @".  Told, when the left
  operand is something conhook can recognise (a non-atomic or ``async def`` function, a
  method of one, an object of conhook's): the module was not rewritten, and how to opt in.

Each is recognised from the failure's innermost frames (the instruction that failed, the
frames of the framework that failed), and only where a failure surfaces: when it leaves
``bootstrap``, a pytest test, or the runner.  Nothing runs on any path where nothing fails,
so the cost on hot paths is nil; the price is that ``except TypeError`` inside the program
sees Python's own message.  ``explain(exc)`` returns the exception to raise: `exc` itself,
its message rewritten in place, or (asyncio) a new ``TypeError`` whose traceback ends at the
user's ``@()`` line.
"""
from __future__ import annotations

import opcode

from .._reserved_names import CO_COROUTINE, RUNTIME_NAME

# (re and linecache are imported only when a slip is explained: every program imports this module.)
_AWAITED_TYPE = r"^object (\S+) can't be used in 'await'|^'([^']+)' object can't be awaited"

_GET_AWAITABLE = opcode.opmap["GET_AWAITABLE"]
_BINARY_OP = opcode.opmap["BINARY_OP"]
_NB_MATRIX_MULTIPLY = 4  # BINARY_OP's argument for @ (3.11-3.13)
_FRAMEWORKS = frozenset({"asyncio", "trio", "anyio", "curio", "uvloop"})


def explain(exc):
    """The exception that says what went wrong: `exc` (perhaps with a clearer message), or a
    replacement for it."""
    if not isinstance(exc, Exception) or exc.__traceback__ is None:
        return exc
    entries = []
    tb = exc.__traceback__
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    try:
        return _framework_awaited(exc, entries) or _explained_in_place(exc, entries[-1]) or exc
    except Exception:  # noqa: BLE001  (an explanation must never hide the failure it explains)
        return exc


def _is_con(frame):
    return RUNTIME_NAME in frame.f_globals


def _explained_in_place(exc, last):
    if type(exc) is not TypeError:
        return None
    frame, code, lasti = last.tb_frame, last.tb_frame.f_code, last.tb_lasti
    op, arg = code.co_code[lasti], code.co_code[lasti + 1]
    if op == _GET_AWAITABLE and _is_con(frame):
        callee = _callee(code, lasti)
        if callee is None:
            return None
        # "object NoneType can't be used in 'await' expression" (3.11-3.13),
        # "'NoneType' object can't be awaited" (3.14+)
        import re
        named = re.search(_AWAITED_TYPE, str(exc))
        what = (named.group(1) or named.group(2)) if named else "a value"
        exc.args = (f"{callee}@(...): {callee} is not a non-atomic function (it returned {_a(what)}, "
                    f"which @() cannot run): call it without @, as {callee}(...)",)
        return exc
    if op == _BINARY_OP and arg == _NB_MATRIX_MULTIPLY and not _is_con(frame):
        callee = _callee(code, lasti, tight=True)
        if callee is None or not _is_ours(_lookup(frame, callee)):
            return None
        module = frame.f_globals.get("__name__", "?")
        if module == "__main__":
            how = ("run the program with `python -m conhook`, which rewrites the script it runs "
                   "(plain `python` compiles it before any import can)")
        else:
            how = ("opt it in with `import con` (or `from con import ...`) at top level, in "
                   "column 0, not inside if/try/def")
        exc.args = (f"{callee}@(...) is a non-atomic call, but module {module!r} was not rewritten by "
                    f"conhook, so @ is matrix multiplication there: {how}",)
        return exc
    return None


def _framework_awaited(exc, entries):
    """A conhook thread awaited a coroutine of asyncio (trio, ...): the promised TypeError."""
    for caller, callee in zip(entries, entries[1:]):
        name = callee.tb_frame.f_globals.get("__name__", "")
        framework = name.partition(".")[0]
        if (framework in _FRAMEWORKS and _is_con(caller.tb_frame)
                and callee.tb_frame.f_code.co_flags & CO_COROUTINE):
            code = caller.tb_frame.f_code
            called = _callee(code, caller.tb_lasti) or callee.tb_frame.f_code.co_qualname
            hosted = (f"Run it on the asyncio loop that can host the scheduler: con.aio@({called}(...)), "
                      f"with `python -m conhook --loop asyncio` or con.bootstrap(main, loop=\"asyncio\"); "
                      f"or use " if framework in ("asyncio", "uvloop") else "Use ")
            error = TypeError(
                f"{called}@(...) awaited {framework} code ({name}.{callee.tb_frame.f_code.co_qualname}), "
                f"which runs only on {_an(framework)} event loop: conhook is a scheduler of its own. {hosted}"
                f"conhook's operations instead (con.sleep, con.Event, con.Queue, con.tcpconnect, ...), "
                f"or run the {framework} code in a worker OS thread: to_thread@({framework}.run, ...)")
            caller.tb_next = None  # the user's @() line is the last frame shown
            error.__context__, error.__suppress_context__ = exc, True
            return error.with_traceback(entries[0])
    return None


def _a(what):
    if what == "NoneType":
        return "None"
    return what if what == "a value" else f"{_an(what)} object"


def _an(word):
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _callee(code, lasti, tight=False):
    """The text of the function called at `lasti` with ``@(`` (``con.timeout``), or None."""
    import io
    import linecache
    import tokenize

    positions = list(code.co_positions())[lasti // 2]
    line, end_line, col, end_col = positions
    if None in positions:
        return None
    lines = [linecache.getline(code.co_filename, n).encode() for n in range(line, end_line + 1)]
    if not all(lines):
        return None
    lines[-1] = lines[-1][:end_col]
    lines[0] = lines[0][col:]
    text = b"".join(lines).decode(errors="replace")
    depth, previous = 0, None
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    for i, token in enumerate(tokens):
        if token.string in "([{" and token.type == tokenize.OP:
            depth += 1
        elif token.string in ")]}" and token.type == tokenize.OP:
            depth -= 1
        elif (token.string == "@" and depth == 0 and i + 1 < len(tokens)
              and tokens[i + 1].string == "(" and tokens[i + 1].start == token.end
              and (not tight or previous is not None and previous.end == token.start)):
            return _text_before(text, token.start).strip() or None
        previous = token
    return None


def _text_before(text, position):
    row, col = position
    lines = text.splitlines(keepends=True)
    return "".join(lines[:row - 1]) + lines[row - 1][:col]


_MISSING = object()


def _lookup(frame, dotted):
    """The value of a dotted name (``con.sleep``, ``self.stream.read``) in `frame`, or _MISSING."""
    names = dotted.split(".")
    if not all(name.isidentifier() for name in names):
        return _MISSING
    first, *rest = names
    for namespace in (frame.f_locals, frame.f_globals, frame.f_builtins):
        if first in namespace:
            value = namespace[first]
            break
    else:
        return _MISSING
    for name in rest:
        value = getattr(value, name, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def _is_ours(value):
    """Whether `value` is a non-atomic (or ``async def``) function, a method of one, or a
    function or object of conhook's own making (``con.sleep``, ``con.idle``)."""
    if value is _MISSING or isinstance(value, type):
        return False
    function = getattr(value, "__func__", value)
    code = getattr(function, "__code__", None)
    if code is not None and code.co_flags & CO_COROUTINE:
        return True
    module = getattr(function, "__module__", None)
    if not isinstance(module, str):
        module = type(value).__module__
    return module == "con" or module.startswith("conhook.")
