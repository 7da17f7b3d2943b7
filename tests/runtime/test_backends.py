"""Each readiness backend on its own: register, modify, unregister, poll, errors."""
from __future__ import annotations

import socket

import pytest

from conhook._runtime.backends import READ, WRITE, available, backend_class


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def events(backend, timeout=0.0):
    """What the backend reports, as READ/WRITE masks (each backend reports its own bits)."""
    return {fd: (READ if ev & backend.readable else 0) | (WRITE if ev & backend.writable else 0)
            for fd, ev in backend.poll(timeout)}


def test_the_preferred_backend_comes_first():
    names = available()
    assert names and names[-1] in ("select", "poll")
    if hasattr(socket, "AF_UNIX") and "epoll" in names:
        assert names[0] == "epoll"


def test_register_modify_unregister(backend, pair):
    a, b = pair
    poller = backend_class(backend)()
    try:
        poller.register(a.fileno(), READ)
        assert events(poller) == {}
        b.send(b"x")
        assert events(poller, 1.0) == {a.fileno(): READ}
        poller.modify(a.fileno(), WRITE)
        assert events(poller, 1.0) == {a.fileno(): WRITE}
        poller.modify(a.fileno(), READ | WRITE)
        assert events(poller, 1.0) == {a.fileno(): READ | WRITE}
        poller.unregister(a.fileno())
        assert events(poller) == {}
        poller.unregister(a.fileno())  # twice is harmless
    finally:
        poller.close()


def test_hang_up_wakes_both_directions(backend, pair):
    a, b = pair
    poller = backend_class(backend)()
    try:
        poller.register(a.fileno(), READ)
        b.close()
        assert events(poller, 1.0)[a.fileno()] & READ
    finally:
        poller.close()


def test_poll_timeout_is_honoured(backend):
    import time
    poller = backend_class(backend)()
    try:
        start = time.monotonic()
        assert poller.poll(0.02) == []
        assert time.monotonic() - start >= 0.015
    finally:
        poller.close()


def test_unavailable_backend_is_refused():
    missing = [n for n in ("epoll", "kqueue") if n not in available()]
    if not missing:
        pytest.skip("every backend is available here")
    with pytest.raises(ValueError, match="not available"):
        backend_class(missing[0])
