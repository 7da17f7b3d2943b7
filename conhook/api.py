"""con: lightweight cooperative threads (the public API, served as ``import con``).

Threads switch only inside non-atomic calls (``f@(args)``); ``sibling f@(args)`` starts a
thread that the current function waits for before it returns (prejoin).  See docs/guide.md.
"""
# (No `from __future__ import annotations`: it would put `annotations` in dir(con).)
from ._runtime.bootstrap import bootstrap
from ._runtime.errors import Deadlock, Interrupted
from ._network.sockets import (Listener, ipv4addr, ipv6addr, tcpconnect, tcplisten, unixconnect,
                       unixlisten)
from ._network.streams import Stream
from ._network.udp import UDPSocket, udpsocket
from ._runtime.primitives import Event, Lock, Queue, QueueClosed, QueueEmpty, QueueFull, Semaphore
from ._runtime.results import as_completed, gather, race
from ._runtime.timeouts import sleep, timeout
from ._runtime.traps import idle
from ._runtime.cactus_stack import tree as _tree
from ._runtime.never_run_warning import install as _install_unrun_warning
from ._runtime.worker_threads import CapacityLimiter, current_default_thread_limiter, to_thread
from ._runtime.from_thread import current_token, from_thread


def tree():
    """The cactus stack of the running program as a string (docs/spec.md §1.7).

    The root thread's chain of non-atomic calls comes first (``bootstrap - main - accept``);
    each thread started by ``sibling`` is drawn on its own line under the frame that started
    it (``| echo - read``).
    """
    return _tree()


# Imported when first used: ssl, subprocess and asyncio cost a program that does not use them 20 ms.
# (Named here for readers and type checkers, which take TYPE_CHECKING as true.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._network.tls import BrokenStreamError, TLSStream, tls_wrap
    from ._system.processes import Process, open_process, run_process
    from ._system.signals import signals
    from ._runtime.aio import aio, from_aio

_ON_FIRST_USE = {
    "tls_wrap": "conhook._network.tls", "TLSStream": "conhook._network.tls",
    "BrokenStreamError": "conhook._network.tls",
    "run_process": "conhook._system.processes", "open_process": "conhook._system.processes",
    "Process": "conhook._system.processes", "signals": "conhook._system.signals",
    "aio": "conhook._runtime.aio", "from_aio": "conhook._runtime.aio",
}


def __getattr__(name):
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module 'con' has no attribute {name!r}")
    import importlib
    value = globals()[name] = getattr(importlib.import_module(module), name)
    return value


def __dir__():
    return sorted(set(globals()) - {"__getattr__", "__dir__", "TYPE_CHECKING"} | set(__all__))


_install_unrun_warning()

__all__ = [
    "bootstrap", "idle", "sleep", "timeout", "Interrupted", "Deadlock",
    "Event", "Lock", "Semaphore", "Queue", "QueueEmpty", "QueueFull", "QueueClosed",
    "gather", "race", "as_completed", "to_thread", "tree",
    "from_thread", "current_token", "CapacityLimiter", "current_default_thread_limiter",
    "tcplisten", "tcpconnect", "unixlisten", "unixconnect", "ipv4addr", "ipv6addr",
    "Listener", "Stream", "udpsocket", "UDPSocket", "tls_wrap", "TLSStream", "BrokenStreamError",
    "run_process", "open_process", "Process", "signals", "aio", "from_aio",
]
