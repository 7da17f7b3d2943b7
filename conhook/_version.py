"""conhook's version and the Pythons it is tested on: a leaf, so that the import hook's cache
key and ``import conhook`` can read them without importing anything else.  pyproject.toml reads
the version too."""
from __future__ import annotations

import os
import sys
import warnings

__version__ = "0.2.0"

OLDEST_PYTHON = (3, 11)
NEWEST_PYTHON = (3, 15)  # the newest Python the whole test suite runs on in CI
ALLOW_UNTESTED = "CONHOOK_ALLOW_UNTESTED_PYTHON"


def check_python(version=None) -> None:
    """Refuse a Python conhook was not tested on, with a message that says which ones it was.

    The bytecode layer follows the interpreter's own compiler, and a newer one may compile
    ``await`` differently: better told at ``import conhook`` than surprised by a crash inside
    the first compile.  ``CONHOOK_ALLOW_UNTESTED_PYTHON=1`` turns the refusal of a newer Python
    into a warning, to try it anyway.
    """
    current = tuple((version or sys.version_info)[:2])
    supported = f"{OLDEST_PYTHON[0]}.{OLDEST_PYTHON[1]} to {NEWEST_PYTHON[0]}.{NEWEST_PYTHON[1]}"
    running = f"{current[0]}.{current[1]}"
    if current < OLDEST_PYTHON:
        raise ImportError(f"conhook {__version__} needs Python {supported}; this is Python {running}")
    if current > NEWEST_PYTHON:
        message = (f"conhook {__version__} is tested on Python {supported}; this is Python {running}, "
                   f"whose compiler it may not follow")
        if os.environ.get(ALLOW_UNTESTED, "") in ("", "0"):
            raise ImportError(f"{message}. Upgrade conhook, or set {ALLOW_UNTESTED}=1 to try it anyway.")
        warnings.warn(f"{message} ({ALLOW_UNTESTED} is set).", RuntimeWarning, stacklevel=3)
