"""The fixtures of conhook.testing_fixtures, loaded as a user's conftest would."""
from __future__ import annotations

import pytest

from conhook.testing_fixtures import memory_streams  # noqa: F401  (a fixture)


@pytest.fixture(autouse=True)
def no_inherited_conhook_env(monkeypatch):
    """A CONHOOK_SCHEDULE_SEED or CONHOOK_WATCHDOG of the outer run would change these tests."""
    for name in ("CONHOOK_SCHEDULE_SEED", "CONHOOK_WATCHDOG", "CONHOOK_DEBUG"):
        monkeypatch.delenv(name, raising=False)
