"""The ``con`` API as the checker sees it: which of its functions and methods are non-atomic.

The toolchain reads con files without running them and may not import the runtime, so the
API's shape is written down here, in this one place; tests/test_check.py holds it to
the runtime (every name of ``con.__all__`` and every public method of its classes is here, and
each is non-atomic exactly when the runtime's object is a coroutine function or documents
itself as called with ``@``).
"""
from __future__ import annotations

# The functions of ``con`` that are called with ``@``.
NONATOMIC_FUNCTIONS = frozenset({
    "idle", "sleep", "gather", "race", "as_completed", "to_thread",
    "tcplisten", "tcpconnect", "unixlisten", "unixconnect", "tls_wrap", "udpsocket",
    "run_process", "open_process",
    "aio", "from_aio",  # (from_aio is awaited by asyncio code: a coroutine function all the same)
})

# The functions of ``con`` that are not: ``@()`` on them is a mistake.
ATOMIC_FUNCTIONS = frozenset({"tree", "current_token", "current_default_thread_limiter"})

# The classes of ``con``, each with its non-atomic methods.  ``@()`` on a class
# (``timeout@(5)``, ``Event@()``) is a mistake.
CLASSES: dict[str, frozenset[str]] = {
    "bootstrap": frozenset(), "timeout": frozenset(), "from_thread": frozenset(),
    "Interrupted": frozenset(), "Deadlock": frozenset(),
    "Event": frozenset({"wait"}),
    "Lock": frozenset({"acquire", "hold"}),
    "Semaphore": frozenset({"acquire", "hold"}),
    "Queue": frozenset({"put", "get", "wait_closed"}),
    "QueueEmpty": frozenset(), "QueueFull": frozenset(), "QueueClosed": frozenset(),
    "ipv4addr": frozenset(), "ipv6addr": frozenset(),
    "Listener": frozenset({"accept"}),
    "Stream": frozenset({"read", "write"}),
    "TLSStream": frozenset({"handshake", "read", "write", "unwrap"}),
    "BrokenStreamError": frozenset(),
    "UDPSocket": frozenset({"sendto", "recvfrom", "send", "recv"}),
    "CapacityLimiter": frozenset(),
    "Process": frozenset({"wait"}),
    "signals": frozenset({"get"}),
}

# Their atomic public methods: ``@()`` on one is a mistake.
ATOMIC_METHODS: dict[str, frozenset[str]] = {
    "Event": frozenset({"is_set", "set"}),
    "Lock": frozenset({"locked", "release"}),
    "Semaphore": frozenset({"release"}),
    "Queue": frozenset({"qsize", "put_nowait", "get_nowait", "close"}),
    "Listener": frozenset({"fileno", "close"}),
    "Stream": frozenset({"write_nowait", "shutdown_write", "close", "fileno"}),
    "TLSStream": frozenset({"write_nowait", "shutdown_write", "close", "version", "cipher",
                            "selected_alpn_protocol", "getpeercert", "fileno"}),
    "Process": frozenset({"send_signal", "terminate", "kill", "close"}),
    "UDPSocket": frozenset({"close", "fileno"}),
}

# What a non-atomic function or method returns, where it is an object of the API's classes (so
# that a method call on the result is known: ``s = tcpconnect@(...)`` then ``s.read()``): every
# class it may be (``tcpconnect@(..., tls=True)`` returns a TLSStream).
RETURNS: dict[str, tuple[str, ...]] = {
    "tcplisten": ("Listener",), "unixlisten": ("Listener",),
    "tcpconnect": ("Stream", "TLSStream"), "unixconnect": ("Stream",),
    "Listener.accept": ("Stream", "TLSStream"),
    "tls_wrap": ("TLSStream",), "open_process": ("Process",), "udpsocket": ("UDPSocket",),
}
