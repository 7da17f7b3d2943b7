"""Installed con libraries (docs/libraries.md): a package in site-packages holding the marker
file ``con.library`` is rewritten where it opts in, as the application's own modules are;
every other package there is declined before its files are opened.

The sample project ``tests/con_library`` (and a copy of it under another name) is built into
wheels and installed with pip, not editable, into a virtual environment of its own that sees
conhook and ``bytecode`` through a ``.pth`` file: no network, no build isolation.
"""
from __future__ import annotations

import builtins
import importlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conhook import _import_hook

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "con_library"


def run(*args: str, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def renamed_sample(directory: Path, name: str) -> Path:
    """A copy of the sample project whose package is ``name``."""
    project = directory / name
    shutil.copytree(SAMPLE, project)
    (project / "con_sample").rename(project / name)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("con_sample", name).replace("con-sample", name))
    return project


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> tuple[Path, Path]:
    """(its python, its site-packages): the sample library and a copy of it installed."""
    pytest.importorskip("setuptools", reason="setuptools (in the test extra) builds the sample's wheel")
    directory = tmp_path_factory.mktemp("libraries")
    wheels = directory / "wheels"
    projects = [str(renamed_sample(directory, name)) for name in ("con_sample", "con_sample_two")]
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-q", "-w", str(wheels), *projects)
    run(sys.executable, "-m", "venv", "--without-pip", str(directory / "venv"))
    python = directory / "venv" / "bin" / "python"
    site = Path(run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    bytecode_home = Path(importlib.import_module("bytecode").__file__).parent.parent
    (site / "conhook_under_test.pth").write_text(f"{ROOT}\n{bytecode_home}\n")
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
        *map(str, wheels.glob("*.whl")))
    assert (site / "con_sample" / "con.library").is_file()  # installed from the wheel, not linked
    assert not list(site.glob("__editable__*"))
    return python, site


def test_an_installed_library_imports_from_plain_python_after_import_conhook(venv):
    python, site = venv
    out = run(str(python), "-c", textwrap.dedent("""\
        import conhook, con, inspect
        import con_sample, con_sample.arithmetic
        print(con.bootstrap(con_sample.squares, [1, 2, 3]))
        print(inspect.iscoroutinefunction(con_sample.arithmetic.square))
    """))
    assert out.split() == ["[1,", "4,", "9]", "False"]  # its plain module stays plain


def test_an_installed_library_imports_from_a_con_program(venv, tmp_path):
    python, site = venv
    (tmp_path / "prog.py").write_text(textwrap.dedent("""\
        import con
        import con_sample


        def main():
            sibling con_sample.squares@([2])
            return con_sample.squares@([4, 5])


        print(con.bootstrap(main))
    """))
    assert run(str(python), "-m", "conhook", "prog.py", cwd=tmp_path).strip() == "[16, 25]"


def test_libraries_and_the_applications_install_calls_add_up(venv, tmp_path):
    python, site = venv
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "covered.py").write_text("def f(g):\n    return g@(1)\n")  # no import con
    (tmp_path / "listed.py").write_text("def f(g):\n    return g@(2)\n")
    out = run(str(python), "-c", textwrap.dedent(f"""\
        import sys, inspect
        sys.path[:0] = [{str(tmp_path)!r}, {str(tmp_path / "app")!r}]
        import conhook
        conhook.install(paths=[{str(tmp_path / "app")!r}])
        conhook.install(packages=["listed"])
        import con_sample, con_sample_two, covered, listed
        print(all(map(inspect.iscoroutinefunction, (con_sample.squares, con_sample_two.squares,
                                                    covered.f, listed.f))))
    """))
    assert out.strip() == "True"


def test_a_package_in_site_packages_is_declined_before_its_files_are_opened_unless_marked(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    for name in ("plainpkg", "conpkg"):
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text("import con\n\ndef f():\n    sibling f@()\n")
    (site / "conpkg" / _import_hook.LIBRARY_MARKER).write_text("")
    finder = _import_hook.ConFinder()
    root = os.path.join(os.path.realpath(site), "")
    finder.site_roots, finder.skip_roots = (root,), finder.skip_roots + (root,)
    opened = []
    monkeypatch.setattr(_import_hook, "open", lambda file, *a, **k: opened.append(file) or builtins.open(file, *a, **k),
                        raising=False)
    spec = finder.find_spec("plainpkg", [str(site)])
    assert type(spec.loader) is importlib.machinery.SourceFileLoader and opened == []
    spec = finder.find_spec("conpkg", [str(site)])
    assert isinstance(spec.loader, _import_hook.ConLoader)
    assert str(site / "conpkg" / "__init__.py") in opened
    # The verdict is kept; importlib.invalidate_caches() forgets it (a library installed since).
    (site / "plainpkg" / _import_hook.LIBRARY_MARKER).write_text("")
    assert type(finder.find_spec("plainpkg", [str(site)]).loader) is importlib.machinery.SourceFileLoader
    finder.invalidate_caches()
    assert isinstance(finder.find_spec("plainpkg", [str(site)]).loader, _import_hook.ConLoader)
