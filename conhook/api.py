"""con: lightweight cooperative threads (the public API, served as ``import con``).

Threads switch only inside non-atomic calls (``f@(args)``); ``sibling f@(args)`` starts a
thread that the current function waits for before it returns (prejoin).  See docs/guide.md.
"""
from __future__ import annotations

from ._bootstrap import bootstrap
from ._errors import Deadlock, Interrupted
from ._sync import Event, Lock, Queue, QueueEmpty, QueueFull, Semaphore
from ._timeout import sleep, timeout
from ._traps import idle
from ._tree import tree as _tree
from ._workers import to_thread


def tree():
    """The cactus stack of the running program as a string (SPEC 1.7).

    The root thread's chain of non-atomic calls comes first (``bootstrap - main - accept``);
    each thread started by ``sibling`` is drawn on its own line under the frame that started
    it (``| echo - read``).
    """
    return _tree()


__all__ = [
    "bootstrap", "idle", "sleep", "timeout", "Interrupted", "Deadlock",
    "Event", "Lock", "Semaphore", "Queue", "QueueEmpty", "QueueFull",
    "to_thread", "tree",
]
