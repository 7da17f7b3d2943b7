"""``.ci/run``: each Python gets a fresh clone named ``conhook`` and runs the README's test line there.

The interpreters are stand-ins (a script per version on ``PATH``, whose ``-m venv`` makes an
environment of stand-ins that record where ``pip`` and ``python -m pytest`` ran), so that the
test checks what the script does in seconds, without installing anything.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import conftest

ROOT = Path(__file__).resolve().parent.parent

FAKE_PYTHON = """#!/usr/bin/env bash
# A stand-in interpreter: it passes the version check and makes environments of stand-ins.
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin"
    echo "export PATH='$3/bin':\\"\\$PATH\\"" > "$3/bin/activate"
    for tool in pip python; do
        printf '#!/usr/bin/env bash\\necho "%s $PWD $(git rev-parse HEAD) ${%s:-unset} $*" >> "$CI_LOG"\\n' \\
            "$tool" VERSION_VARIABLE > "$3/bin/$tool"
        chmod +x "$3/bin/$tool"
    done
fi
""".replace("VERSION_VARIABLE", conftest.ENVIRONMENT)

FAKE_NEWER_PYTHONS = """#!/usr/bin/env bash
# A stand-in for the newer-pythons tool: it records where it was asked to run what, in which root.
echo "newer-pythons $1 $PWD $(git rev-parse HEAD) ${*:2}" | tr -s ' \\n' ' ' >> "$CI_LOG"
echo >> "$CI_LOG"
"""


def _run_ci(tmp_path: Path):
    """Run .ci/run with stand-in Pythons; return (its result, the lines the stand-ins logged,
    the newer-pythons root it was given)."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for version in ("3.11", "3.12", "3.13", "3.14", "3.15"):
        fake = bin_dir / f"python{version}"
        fake.write_text(FAKE_PYTHON)
        fake.chmod(0o755)
    newer = bin_dir / "newer-pythons"
    newer.write_text(FAKE_NEWER_PYTHONS)
    newer.chmod(0o755)
    log = tmp_path / "ci.log"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", CI_LOG=str(log),
               HOME=str(tmp_path), NEWER_PYTHONS=str(newer), NEWER_PYTHONS_ROOT=str(tmp_path / "root"))
    result = subprocess.run(["bash", str(ROOT / ".ci" / "run")], env=env, capture_output=True,
                            text=True, timeout=120)
    return result, log.read_text().splitlines() if log.exists() else [], tmp_path / "root"


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    return _run_ci(tmp_path_factory.mktemp("ci"))


pytestmark = pytest.mark.version_independent  # (bash and git run a script of stand-ins)


def test_each_python_runs_the_readme_test_line_in_a_fresh_clone_named_conhook(ci_run):
    result, lines, _ = ci_run
    assert result.returncode == 0, result.stderr
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    pytest_runs = [line.split() for line in lines if line.startswith("python ")]
    assert [[words[2], *words[4:]] for words in pytest_runs] == [[head, "-m", "pytest"]] * 3  # 3.11-3.13
    folders = [Path(words[1]) for words in pytest_runs]
    assert len(set(folders)) == 3  # a fresh clone each
    for folder in folders:
        assert folder.name == "conhook" and folder != ROOT and ROOT not in folder.parents
        assert f"pip {folder} {head} 3.11 install -e .[test]" in lines  # the README line, there
    assert not any(folder.exists() for folder in folders)  # removed at the end


def test_python_3_14_and_3_15_run_the_readme_test_line_in_the_newer_pythons_root(ci_run):
    result, lines, root = ci_run
    assert result.returncode == 0, result.stderr
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    runs = [line.split(" ", 4) for line in lines if line.startswith("newer-pythons ")]
    assert [(root, commit) for _, root, _, commit, _ in runs] == [(str(root), head)] * 2
    for (*_, folder, _, command), version in zip(runs, ("3.14", "3.15")):
        assert Path(folder).name == "conhook" and Path(folder) != ROOT
        assert f"python{version} -m venv /ci-venv-{version}" in command
        assert f"libpython{version}-testsuite" in command
        assert command.rstrip().endswith("pip install -e '.[test]' && python -m pytest")


def test_every_run_names_the_one_python_that_runs_the_version_independent_tests(ci_run):
    """Each of the five runs is told 3.11: the marked tests run there and are skipped elsewhere."""
    result, lines, _ = ci_run
    assert result.returncode == 0, result.stderr
    assert [line.split()[3] for line in lines if line.startswith("python ")] == ["3.11"] * 3
    newer = [line for line in lines if line.startswith("newer-pythons ")]
    assert len(newer) == 2 and all(f" export {conftest.ENVIRONMENT}=3.11 && pip install -e " in line
                                   for line in newer), newer


@contextlib.contextmanager
def _mounted_tmpfs(where: Path):
    """A tmpfs mounted at ``where`` (as the newer-pythons tool mounts /proc and /dev in its root),
    unmounted at the end if it still is."""
    where.mkdir(parents=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(where)],
                                           capture_output=True).returncode:
        pytest.skip("mounting needs root, as the newer-pythons tool does")
    try:
        yield
    finally:
        if _is_mount_point(where):
            subprocess.run(["umount", "-l", str(where)], check=True)


def _is_mount_point(where: Path) -> bool:
    return any(line.split()[4] == str(where) for line in Path("/proc/self/mountinfo").read_text().splitlines())


def test_what_a_killed_run_left_mounted_in_the_newer_pythons_root_is_released_and_the_run_goes_on(tmp_path):
    left_mounted = tmp_path / "root" / "proc"
    with _mounted_tmpfs(left_mounted):
        result, lines, _ = _run_ci(tmp_path)
        assert not _is_mount_point(left_mounted)
    assert result.returncode == 0, result.stderr
    assert f"unmounting what a killed run left under {tmp_path / 'root'}: {left_mounted}" in result.stderr
    assert len([line for line in lines if line.startswith("newer-pythons ")]) == 2


def test_a_newer_pythons_root_that_a_live_process_runs_in_is_left_alone(tmp_path):
    root = tmp_path / "root"
    with _mounted_tmpfs(root / "proc"):
        inside = subprocess.Popen(
            [sys.executable, "-c", "import os, sys, time; os.chroot(sys.argv[1]); print(flush=True); time.sleep(60)",
             str(root)], stdout=subprocess.PIPE)
        try:
            inside.stdout.readline()  # it is in
            result = subprocess.run([str(ROOT / ".ci" / "release-stale-mounts"), str(root)],
                                    capture_output=True, text=True, timeout=60)
        finally:
            inside.kill()
            inside.wait()
            inside.stdout.close()
        assert result.returncode == 1
        assert f"{root} is in use by process {inside.pid} (another run?); left as it is" in result.stderr
        assert _is_mount_point(root / "proc")


class _Item:
    def __init__(self, marked: bool):
        self.marks = [pytest.mark.version_independent.mark] if marked else []

    def get_closest_marker(self, name):
        return next((mark for mark in self.marks if mark.name == name), None)

    def add_marker(self, marker):
        self.marks.append(marker.mark)


def _skips(monkeypatch, value: str | None) -> list[str | None]:
    """The skip reason given to a marked and to an unmarked test, with the variable at ``value``."""
    if value is None:
        monkeypatch.delenv(conftest.ENVIRONMENT, raising=False)
    else:
        monkeypatch.setenv(conftest.ENVIRONMENT, value)
    items = [_Item(True), _Item(False)]
    conftest.pytest_collection_modifyitems(None, items)
    return [next((m.kwargs["reason"] for m in item.marks if m.name == "skip"), None) for item in items]


@pytest.mark.parametrize("value", [None, "%d.%d" % sys.version_info[:2]])
def test_version_independent_tests_run_without_the_variable_or_on_the_python_it_names(monkeypatch, value):
    assert _skips(monkeypatch, value) == [None, None]


def test_version_independent_tests_are_skipped_elsewhere_saying_where_they_run(monkeypatch):
    other = "3.99"
    assert _skips(monkeypatch, other) == [
        f"version-independent: runs on Python 3.99 only ({conftest.ENVIRONMENT}=3.99, as .ci/run sets it)", None]


def test_a_variable_that_names_no_python_version_is_refused(monkeypatch):
    with pytest.raises(pytest.UsageError, match=f"{conftest.ENVIRONMENT}='eleven'"):
        _skips(monkeypatch, "eleven")


def test_what_collection_built_is_frozen_out_of_the_garbage_collectors_scans():
    """tests/conftest.py: a full collection then walks only what the tests made since."""
    import gc
    assert gc.get_freeze_count() > 10_000  # this module's own objects among them
