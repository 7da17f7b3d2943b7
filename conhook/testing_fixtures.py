"""pytest fixtures for con tests.

``virtual_clock``
    An auto-jumping ``conhook.testing.VirtualClock`` installed on the test's scheduler.  It is
    a non-atomic fixture, so the test using it must be a non-atomic test function.
``memory_streams``
    A connected pair of in-memory streams, ``(a, b)``, closed after the test.

Use them by importing them into a test module or a ``conftest.py``
(``from conhook.testing_fixtures import virtual_clock, memory_streams``), or with
``pytest_plugins = ["conhook.testing_fixtures"]`` in the root ``conftest.py``.  The conhook
pytest plugin runs ``virtual_clock`` on the test's scheduler (it is an async generator of a
module with ``__con__``, like a con module's); the plugin may re-export both.  Schedule
fuzzing needs no fixture: run the tests with ``CONHOOK_SCHEDULE_SEED=N`` in the environment
(``monkeypatch.setenv`` works too, for a test that makes its scheduler after it).
"""
from __future__ import annotations

import pytest

from . import testing

virtual_clock = pytest.fixture(name="virtual_clock")(testing.virtual_clock_fixture)
memory_streams = pytest.fixture(name="memory_streams")(testing.memory_streams_fixture)

__all__ = ["virtual_clock", "memory_streams"]
