"""The package's floor plan (README, "Layout"): imports run one way, and nothing loads more
than its layer needs.

    conhook._reserved_names, conhook._version   the floor: imports nothing
    conhook._compiler                           the floor and ``bytecode`` only
    conhook._runtime                            the floor; its core (kernel, traps, threads,
                                                backends, wakeup, errors, outside_threads)
                                                nothing above it
    conhook._network                            the runtime
    conhook._system                             the runtime and the network
    conhook._toolchain                          the floor and the compiler (tools read con
                                                files; they never run them)
    conhook (front ends and public modules)     anything
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "conhook"
CORE = {"errors", "traps", "threads", "backends", "wakeup", "kernel", "outside_threads"}


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p) for p in PACKAGE.rglob("*.py")}


def _imports(path):
    """The conhook modules that `path` imports, at any depth of its code (function-level too)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & MODULES
            found.update(submodules or {target})  # from . import x imports the module x
    return {m for m in found if m in MODULES and m != name}


GRAPH = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _layer(module):
    parts = module.split(".")
    if module in ("conhook._reserved_names", "conhook._version"):
        return "floor"
    if len(parts) > 1 and parts[1] in ("_compiler", "_runtime", "_network", "_system", "_toolchain"):
        if parts[1] == "_runtime" and len(parts) > 2 and parts[2] in CORE:
            return "core"
        return parts[1][1:]
    return "front"


# What each layer may import (besides itself and the packages' own __init__ docstrings).
ALLOWED = {
    "floor": set(),
    "compiler": {"floor"},
    "core": {"floor"},
    "runtime": {"floor", "core"},
    "network": {"floor", "core", "runtime"},
    "system": {"floor", "core", "runtime", "network"},
    "toolchain": {"floor", "compiler"},
    "front": {"floor", "core", "runtime", "network", "system", "compiler"},
}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_one_way(module):
    layer = _layer(module)
    wrong = sorted(target for target in GRAPH[module]
                   if _layer(target) != layer and _layer(target) not in ALLOWED[layer]
                   and target not in ("conhook._compiler", "conhook._runtime", "conhook._network",
                                      "conhook._system", "conhook._toolchain"))
    assert not wrong, f"{module} ({layer}) imports {wrong}"


def _private_names_imported(path):
    """[(line, name)] of the names private to another conhook module that `path` takes:
    ``from .m import _name`` (not a module), or ``m._name`` through an imported module ``m``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    found, aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target not in MODULES:
                continue
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    aliases.add(alias.asname or alias.name)  # a module: its names are reached as m.x
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append((node.lineno, f"{target}.{alias.name}"))
        elif isinstance(node, ast.Import):
            aliases.update(alias.asname for alias in node.names if alias.asname and alias.name in MODULES)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=_module_name)
def test_no_module_takes_another_modules_private_names(path):
    """A name a module keeps to itself starts with ``_``; one that another module uses is public
    (inside these private packages), so that a rename is seen where it matters."""
    assert _private_names_imported(path) == []


def _readme_layout():
    """[(path, description)] of README's "Where things live" list, paths relative to conhook/."""
    text = (PACKAGE.parent / "README.md").read_text()
    block = text.split("### Where things live", 1)[1].split("```", 2)[1]
    entries, package = [], ""
    for line in block.splitlines()[2:]:  # (after the opening fence's line and "conhook/")
        name, _, description = line.strip().partition(" ")
        if not name:
            continue
        if line.startswith("    ") and not line.startswith("     "):
            entries.append((package + name, description.strip()))
        elif line.startswith("  ") and not line.startswith("   "):
            package = name if name.endswith("/") else ""
            entries.append((name, description.strip()))
        else:  # a description's second line
            entries[-1] = (entries[-1][0], entries[-1][1] + " " + line.strip())
    return entries


def test_the_readme_layout_lists_every_module_once_in_its_package():
    entries = _readme_layout()
    listed = [path for path, _ in entries]
    assert sorted(p for p in set(listed) if listed.count(p) > 1) == []
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if p.name != "__init__.py" or p.parent == PACKAGE}
    backends = {m for m in modules if m.startswith("_runtime/backends/")}
    described = dict(entries)["_runtime/backends/"]
    assert [m for m in sorted(backends) if m.rpartition("/")[2][:-3] not in described] == []
    packages = {path for path in listed if path.endswith("/")}
    assert packages == {f"{p.parent.relative_to(PACKAGE)}/" for p in PACKAGE.rglob("*/__init__.py")}
    files = set(listed) - packages
    assert (sorted(modules - backends - files), sorted(files - modules)) == ([], [])


def test_no_import_circle():
    # A circle exists if and only if some module reaches itself.
    def reaches(start):
        seen, stack = set(), list(GRAPH[start])
        while stack:
            module = stack.pop()
            if module == start:
                return True
            if module not in seen:
                seen.add(module)
                stack.extend(GRAPH.get(module, ()))
        return False

    assert [m for m in sorted(GRAPH) if reaches(m)] == []


def _loaded_after(code):
    out = subprocess.run(
        [sys.executable, "-c",
         code + "\nimport sys\nprint(' '.join(sorted(m for m in sys.modules if m.startswith('conhook'))))"],
        capture_output=True, text=True, cwd=PACKAGE.parent, check=True).stdout
    return set(out.split())


def test_the_compile_pipeline_loads_no_runtime_module():
    loaded = _loaded_after(
        "import conhook\n"
        "from conhook._compiler import pipeline\n"
        "code = pipeline.compile_con('def f():\\n    sibling g@(1)\\n    return h@(2)\\n', 'm.py')\n")
    assert "conhook._compiler.bytecode_layer" in loaded  # it did compile
    assert not {m for m in loaded if m.startswith(("conhook._runtime", "conhook._network"))}


def test_the_kernel_loads_nothing_above_the_core():
    loaded = _loaded_after("import conhook._runtime.kernel")
    above = {m for m in loaded if _layer(m) not in ("floor", "core")}
    assert above <= {"conhook", "conhook._runtime", "conhook._import_hook"}, above
    assert "conhook._runtime.kernel" in loaded


def test_bootstrap_knows_the_diagnostics_variables():
    from conhook._runtime import bootstrap, diagnostics
    assert bootstrap.DIAGNOSTICS_VARIABLES == set(diagnostics.VARIABLES)


@pytest.mark.version_independent  # (ruff's rules and target version are the configuration's)
def test_the_plain_python_files_pass_the_linter():
    """The ruff configuration in pyproject.toml holds for the package, the tests and the tools."""
    found = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise",
                            "conhook", "tests", "tools"],
                           capture_output=True, text=True, cwd=PACKAGE.parent)
    assert found.returncode == 0, found.stdout + found.stderr


def test_import_con_leaves_tls_and_processes_until_first_use():
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys, conhook, con\n"
         "heavy = {'ssl', 'subprocess', 'conhook._network.tls', 'conhook._system.processes'}\n"
         "print(sorted(heavy & set(sys.modules)))\n"
         "from con import tls_wrap, run_process\n"
         "import conhook._network.tls as tls, conhook._system.processes as processes\n"
         "print(tls_wrap is tls.tls_wrap, run_process is processes.run_process, con.signals.__module__)\n"],
        capture_output=True, text=True, cwd=PACKAGE.parent, check=True).stdout
    assert out == "[]\nTrue True conhook._system.signals\n"
