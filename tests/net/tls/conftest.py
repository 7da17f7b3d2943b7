"""TLS runs over the underlying stream's read@/write@, never over fds of its own, so these tests
do not repeat for each readiness backend (tests/net covers the backends); certificates are made
at test time (trustme)."""
from __future__ import annotations

import pytest

from .certs import Certs


@pytest.fixture
def backend():
    """Overrides tests/net's per-backend parametrisation: the default backend only."""
    return None


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("certs"))
