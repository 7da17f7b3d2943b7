"""Happy Eyeballs (RFC 8305): ``tcpconnect@`` racing the addresses of a name.

* ``interleave(targets)``: the addresses alternate between the families, IPv6 first
  (RFC 8305 §4); within a family they keep the resolver's order.
* ``race(connect, discard, targets, delay)``: each address is tried by a thread of a prejoin
  scope of the caller's call (docs/spec.md §1.3), so no attempt outlives it.  The first
  attempt starts at once; each next one when the one before it fails, or `delay` seconds
  after it started (None: only once it fails, one attempt at a time).  The first connection
  made wins: the attempts still running are interrupted, and each closes its own socket.  A
  connection made by a loser before its interruption reached it is closed by ``discard``.
  An interruption of the caller interrupts every attempt and is raised once they have ended
  (a connection already won is closed too): nothing is left open but a winner handed back.
"""
from __future__ import annotations

import math
import socket

from .._runtime.kernel import current_thread, strip_internal_frames
from .._runtime.prejoin import prejoin
from .._runtime.primitives import Event
from .._runtime.results import stop_the_others
from .._runtime.timeouts import timeout
from .._runtime.traps import interrupted

DELAY = 0.25  # seconds between the starts of two attempts (RFC 8305 §8: 250 ms recommended)


def check_delay(delay):
    """`delay` if it is a number of seconds >= 0 or None, else ValueError or TypeError."""
    if delay is None:
        return delay
    try:
        if delay >= 0 and not math.isnan(delay):
            return delay
    except TypeError:
        pass
    raise (TypeError if not isinstance(delay, (int, float)) else ValueError)(
        f"tcpconnect() needs happy_eyeballs_delay as seconds >= 0 (or None: one attempt at "
        f"a time), not {delay!r}")


def interleave(targets):
    """[(family, sockaddr)] reordered: IPv6, IPv4, IPv6, ... while both last, then the rest."""
    v6 = [t for t in targets if t[0] == socket.AF_INET6]
    other = [t for t in targets if t[0] != socket.AF_INET6]
    if not v6 or not other:
        return list(targets)
    ordered = []
    for pair in zip(v6, other):
        ordered.extend(pair)
    n = min(len(v6), len(other))
    return ordered + v6[n:] + other[n:]


class _Race:
    """What the attempts of one race share."""
    __slots__ = ("connect", "discard", "scope", "winner", "errors", "step")

    def __init__(self, connect, discard):
        self.connect, self.discard = connect, discard
        self.scope = None
        self.winner = None  # (sock, sockaddr) of the first connection made
        self.errors = []  # (index, sockaddr, OSError) of each failed attempt
        self.step = None  # the Event the caller waits on before the next start


async def race(connect, discard, targets, delay):
    """``((sock, sockaddr) or None, [(sockaddr, OSError)] in the order tried)``.

    ``connect(family, sockaddr)`` makes a connected socket or raises (closing its socket);
    ``discard(sock)`` closes one that was connected too late."""
    state = _Race(connect, discard)
    try:
        __con_scope__ = state.scope = scope = prejoin()  # (con.tree() finds a scope by this name)
        try:
            for index, (family, sockaddr) in enumerate(targets):
                state.step = step = Event()
                scope.start(_attempt, state, index, family, sockaddr, step)
                if index + 1 == len(targets):
                    break
                if delay is None:
                    await step.wait()
                else:
                    try:
                        with timeout(delay):
                            await step.wait()
                    except TimeoutError:
                        pass  # the attempt is slow: start the next beside it
                if state.winner is not None:
                    break
        except BaseException as exc:
            if await __con_scope__.failed(exc):
                raise
        finally:
            await scope.join()
        thread = current_thread()
        if thread.interrupt is not None:  # (waiting for the attempts is no interruption point)
            raise interrupted(thread)
    except BaseException as exc:
        if state.winner is not None:
            discard(state.winner[0])
        strip_internal_frames(exc)
        raise
    state.errors.sort(key=lambda error: error[0])
    return state.winner, [(sockaddr, exc) for _, sockaddr, exc in state.errors]


async def _attempt(state, index, family, sockaddr, step):
    """One address's attempt: a thread of the race's scope."""
    try:
        sock = await state.connect(family, sockaddr)
    except OSError as exc:
        state.errors.append((index, sockaddr, exc))
        step.set()  # (if the caller waits on this attempt: start the next one now)
        return
    if state.winner is not None:  # connected before the winner's interruption reached it
        state.discard(sock)
        return
    state.winner = (sock, sockaddr)
    state.step.set()
    stop_the_others(state.scope, "another address of tcpconnect@() connected first")
