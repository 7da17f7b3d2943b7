"""Every example of docs/guide.md runs under ``python -m conhook`` and prints what the guide says."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "guide.md"
EXAMPLE = re.compile(r"```python\n((?:(?!```).)*)```\s*\n```text\n((?:(?!```).)*)```", re.S)


def examples():
    text = GUIDE.read_text(encoding="utf-8")
    found = EXAMPLE.findall(text)
    assert found, "the guide has no runnable examples"
    return found


@pytest.mark.parametrize("source,expected", examples(),
                         ids=[f"example-{i}" for i in range(len(examples()))])
def test_guide_example(tmp_path, source, expected):
    script = tmp_path / "example.py"
    script.write_text(source, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "conhook", str(script)], capture_output=True,
                            text=True, env=env, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
