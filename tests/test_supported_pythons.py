"""An untested Python is told at ``import conhook``, not crashed inside the first compile."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conhook._version import __version__

ROOT = Path(__file__).resolve().parents[1]


def import_conhook_as(version, **env):
    code = f"import sys; sys.version_info = {version!r}; import conhook; print('imported')"
    environ = {k: v for k, v in os.environ.items() if k != "CONHOOK_ALLOW_UNTESTED_PYTHON"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**environ, **env})


@pytest.mark.parametrize("version", [(3, 16, 0, "alpha", 1), (4, 0, 0, "final", 0)])
def test_a_newer_python_is_refused_with_the_tested_versions(version):
    result = import_conhook_as(version)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (f"ImportError: conhook {__version__} is tested on Python 3.11 to 3.15; this is Python "
                    f"{version[0]}.{version[1]}, whose compiler it may not follow. Upgrade conhook, or set "
                    f"CONHOOK_ALLOW_UNTESTED_PYTHON=1 to try it anyway.")


def test_a_newer_python_may_be_tried_with_a_warning():
    result = import_conhook_as((3, 16, 0, "final", 0), CONHOOK_ALLOW_UNTESTED_PYTHON="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "imported\n"
    expected = f"RuntimeWarning: conhook {__version__} is tested on Python 3.11 to 3.15; this is Python 3.16"
    assert expected in result.stderr


def test_an_older_python_is_refused():
    result = import_conhook_as((3, 10, 12, "final", 0))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"ImportError: conhook {__version__} needs Python 3.11 to 3.15; this is Python 3.10")


def test_every_tested_python_imports_quietly():
    for minor in range(11, 16):
        result = import_conhook_as((3, minor, 0, "final", 0))
        assert (result.returncode, result.stdout, result.stderr) == (0, "imported\n", "")


def test_the_metadata_declares_the_tested_versions():
    from conhook import _version
    pyproject = (ROOT / "pyproject.toml").read_text()
    oldest, newest = _version.OLDEST_PYTHON[1], _version.NEWEST_PYTHON[1]
    for minor in range(oldest, newest + 1):
        assert f'"Programming Language :: Python :: 3.{minor}"' in pyproject
    assert f'requires-python = ">=3.{oldest}"' in pyproject
