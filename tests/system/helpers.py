"""Helpers shared by the system tests: the runtime tests' own (``prejoining`` spells out exactly
what the compiler wraps around a function with siblings, and must stay one copy)."""
from __future__ import annotations

from runtime.helpers import con, prejoining, run  # noqa: F401  (re-exported)
