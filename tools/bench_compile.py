"""Benchmark conhook's compile pipeline and the import of rewritten modules.

    python tools/bench_compile.py [--quick]

1. Cold rewrite: ``compile_con`` per 1,000 source lines against plain ``compile`` of the
   same program, with a breakdown per stage (tokens, ast.parse, AST step, compile,
   bytecode).  Two inputs: a generated con module (functions using ``f@()`` and
   ``sibling`` beside ordinary code; its plain twin is the same program written with
   ``async def`` and ``await``), and the largest standard library file, opted in as it
   is (no con syntax) and with one non-atomic function appended (every stage runs).
2. Warm import: importing the con module from conhook's warm cache against an ordinary
   cached import of the very same code (an ordinary ``.pyc`` written with it), each in
   fresh subprocesses that have the runtime imported already (its one-time cost is a
   line of its own; see ``bench_warm``), medians; for reference also the ``async def``
   twin, imported ordinarily and with the hook installed (which declines it).
3. Decline: the finder's verdict on an ordinary module (the largest standard library file,
   copied where the hook does not skip it unread), against reading the file alone.

Goals (issue 2): cold rewrite at most 5x plain compile; warm import within 10%.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import marshal
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from conhook._compiler import ast_step, bytecode_layer, tokens  # noqa: E402
from conhook._compiler.pipeline import compile_con  # noqa: E402

COLD_GOAL = 5.0
WARM_GOAL = 1.10


# -- a realistic con module -------------------------------------------------------------------

CON_FUNCTION = '''\
def handle_{n}(stream, limit={n}):
    """Serve one peer: read requests, answer them, hand slow work to a sibling."""
    total = 0
    buffered = []
    try:
        while total < limit:
            data = stream.read@(65536)
            if not data:
                break
            total += len(data)
            if data.startswith(b"slow"):
                sibling process_{n}@(stream, data[4:])
                continue
            words = [w.upper() for w in data.split() if w]
            buffered.append(b" ".join(words))
            if len(buffered) > 8:
                stream.write@(b"".join(buffered))
                buffered.clear()
    except EOFError:
        pass
    finally:
        if buffered:
            stream.write@(b"".join(buffered))
        stream.close()
    return total


def process_{n}(stream, payload):
    results = {{key: check_{n}@(key) for key in payload.split(b",")}}
    reply = Reply({n}, sorted(results.items()))
    stream.write@(reply.encode())
    return len(results)


def check_{n}(key):
    if key in CACHE:
        return CACHE[key]
    value = idle@() or lookup@(key.decode(), retries=3)
    CACHE[key] = value
    return value


class Table{n}:
    """Ordinary code beside the con code: no switch happens in here."""

    def __init__(self, rows=()):
        self.rows = list(rows)
        self.index = {{row[0]: i for i, row in enumerate(self.rows)}}

    def add(self, key, *values):
        if key in self.index:
            raise KeyError(f"duplicate key {{key!r}}")
        self.index[key] = len(self.rows)
        self.rows.append((key, *values))

    def column(self, number):
        return [row[number] for row in self.rows if len(row) > number]

    def __repr__(self):
        return f"Table{n}({{len(self.rows)}} rows)"


'''

PRELUDE = '''\
"""A generated con module for tools/bench_compile.py."""
import conhook

CACHE = {}


class Reply:
    def __init__(self, code, items):
        self.code, self.items = code, items

    def encode(self):
        return repr((self.code, self.items)).encode()


def idle():
    return None


def lookup(name, retries=1):
    return name


'''


def con_module(functions: int = 24) -> str:
    return PRELUDE + "".join(CON_FUNCTION.format(n=n) for n in range(functions))


def async_twin(source: str) -> str:
    """The same program written with ``async def`` and ``await``; line for line."""
    import re
    source = source.replace("import conhook\n", "\n")
    source = re.sub(r"^def ((?:handle|process|check)_\d+)", r"async def \1", source, flags=re.M)
    source = re.sub(r"sibling (\w+)@\(", r"spawn(\1, ", source)
    return re.sub(r"([\w.]+)@\(([^()]*(?:\([^()]*\))?[^()]*)\)", r"(await \1(\2))", source)


# -- cold rewrite -------------------------------------------------------------------------------

def _median_time(function, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def stage_times(source: str, filename: str, repeat: int) -> dict[str, float]:
    """Median seconds of each stage of ``compile_con``, run as the pipeline runs them."""
    samples = {name: [] for name in ("tokens", "ast.parse", "AST step", "compile", "bytecode")}
    for _ in range(repeat):
        t0 = time.perf_counter()
        rewrite = tokens.rewrite_source(source, filename)
        t1 = time.perf_counter()
        if not rewrite.changed:  # the pipeline's fast path: compile the text as it is
            t2 = t3 = t1
            code = compile(source, filename, "exec", dont_inherit=True)
            t4 = time.perf_counter()
        else:
            tree = ast.parse(rewrite.source, filename)
            t2 = time.perf_counter()
            tree = ast_step.transform(tree, rewrite, filename)
            t3 = time.perf_counter()
            code = compile(tree, filename, "exec", dont_inherit=True)
            t4 = time.perf_counter()
        bytecode_layer.make_nonatomic(code)
        t5 = time.perf_counter()
        for name, value in zip(samples, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            samples[name].append(value)
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_cold(label: str, con_source: str, plain_source: str, repeat: int) -> float:
    lines = con_source.count("\n")
    kilo = lines / 1000
    plain = _median_time(lambda: compile(plain_source, label, "exec", dont_inherit=True), repeat)
    con = _median_time(lambda: compile_con(con_source, label), repeat)
    ratio = con / plain
    print(f"\n{label}: {lines} lines")
    print(f"  plain compile   {plain / kilo * 1e3:8.2f} ms per 1,000 lines")
    print(f"  compile_con     {con / kilo * 1e3:8.2f} ms per 1,000 lines   "
          f"ratio {ratio:5.2f}x  (goal <= {COLD_GOAL:.0f}x: {'met' if ratio <= COLD_GOAL else 'MISSED'})")
    for name, seconds in stage_times(con_source, label, repeat).items():
        print(f"    {name:<12}  {seconds / kilo * 1e3:8.2f} ms per 1,000 lines")
    return ratio


def largest_stdlib_file() -> str:
    root = sysconfig.get_paths()["stdlib"]
    candidates = [os.path.join(root, name) for name in os.listdir(root) if name.endswith(".py")]
    return max(candidates, key=os.path.getsize)


# -- warm import ----------------------------------------------------------------------------------

IMPORT_TIMER = """
import sys, time
sys.path.insert(0, {directory!r})
{setup}
start = time.perf_counter_ns()
import {module}
print(time.perf_counter_ns() - start)
"""


def _import_time(directory: str, module: str, setup: str) -> int:
    code = IMPORT_TIMER.format(directory=directory, module=module, setup=setup)
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(run.stdout)


def _write_ordinary_pyc(path: str, code) -> None:
    """An ordinary ``__pycache__`` entry for ``path`` holding ``code`` (PEP 552 layout,
    timestamp-checked), so that the plain loader imports ``code`` without compiling."""
    stat = os.stat(path)
    header = (importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little")
              + (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
              + (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little"))
    cache = importlib.util.cache_from_source(path)
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    with open(cache, "wb") as file:
        file.write(header + marshal.dumps(code))


def bench_warm(source: str, twin: str, repeat: int) -> float:
    """Fresh subprocesses.  Before the clock starts, each has imported ``conhook``, its
    runtime and a small module of the same kind, so that what is measured is the cost of
    one more module.  One-time costs of a process (the first opted-in module imports the
    runtime and finds out the ``bytecode`` version) are shown on a line of their own.

    The ordinary import runs with the runtime imported too: the runtime's objects make
    every later garbage collection longer, so an import that happens to trigger one costs
    about 0.2 ms more in such a process, whoever loads it; that is the runtime's cost,
    which the "first con module" line shows, not the loader's.
    """
    with tempfile.TemporaryDirectory() as directory:
        modules = {"bench_con": source, "bench_same": source, "bench_plain": twin,
                   "warm_con": "import conhook\n\ndef f():\n    g@()\n", "warm_plain": "x = 1\n"}
        for name, text in modules.items():
            with open(os.path.join(directory, name + ".py"), "w") as file:
                file.write(text)
        same = os.path.join(directory, "bench_same.py")
        _write_ordinary_pyc(same, compile_con(source, same))
        without_hook = "import conhook, conhook._runtime.prejoin; conhook.uninstall(); import warm_plain"
        cases = {
            "ordinary import of the same code": ("bench_same", without_hook),
            "con module from conhook's cache": ("bench_con", "import conhook, warm_con"),
            "  the same, first con module of its process": ("bench_con", "import conhook"),
            "async def twin, ordinary import": ("bench_plain", without_hook),
            "async def twin, hook installed (declines)":
                ("bench_plain", "import conhook, conhook._runtime.prejoin, warm_plain"),
        }
        for module, setup in cases.values():  # warm every cache
            _import_time(directory, module, setup)
        cache = os.path.join(directory, "__pycache__")
        assert any("conhook" in name for name in os.listdir(cache)), os.listdir(cache)
        samples = {label: [] for label in cases}
        for _ in range(repeat):
            for label, (module, setup) in cases.items():
                samples[label].append(_import_time(directory, module, setup))
    medians = {label: statistics.median(values) for label, values in samples.items()}
    base = medians["ordinary import of the same code"]
    print(f"\nwarm import ({repeat} fresh subprocesses each, median):")
    for label, value in medians.items():
        print(f"  {label:<44} {value / 1e3:8.1f} us   {value / base:5.2f}x")
    ratio = medians["con module from conhook's cache"] / base
    print(f"  goal <= {WARM_GOAL:.2f}x: {'met' if ratio <= WARM_GOAL else 'MISSED'}")
    return ratio


def bench_decline(path: str, repeat: int) -> None:
    """The finder's ``decide`` on a copy of ``path`` (it has no opt-in line), and on a module of
    the standard library and of site-packages (declined by their paths), best of ``repeat``."""
    import shutil
    import timeit

    import bytecode

    from conhook._import_hook import ConFinder
    with tempfile.TemporaryDirectory() as directory:
        copy = shutil.copy(path, directory)
        finder = ConFinder()
        assert finder.decide("copy", copy) == (False, None), "the benchmark's module must not opt in"

        def read():
            with open(copy, "rb") as file:
                file.read()

        stdlib, site = os.path.realpath(path), os.path.realpath(bytecode.__file__)
        cases = (("decline", lambda: finder.decide("copy", copy)), ("read", read),
                 ("stdlib", lambda: finder.decide("x", stdlib)), ("site", lambda: finder.decide("bytecode", site)))
        times = {label: min(timeit.repeat(function, number=200, repeat=repeat)) / 200 for label, function in cases}
    size = os.path.getsize(path)
    print(f"\nfinder's decline of {os.path.basename(path)} ({size:,} bytes, best of {repeat}):")
    print(f"  decide (stat, cache look-up, read, opt-in scan) {times['decline'] * 1e6:8.1f} us")
    print(f"  reading the file alone                          {times['read'] * 1e6:8.1f} us")
    print(f"  decide, the same file in the standard library   {times['stdlib'] * 1e6:8.3f} us")
    print(f"  decide, a package in site-packages (bytecode)   {times['site'] * 1e6:8.3f} us")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/bench_compile.py",
        description="Benchmark conhook's compile pipeline (cold rewrite against compile()) and the "
                    "import of rewritten modules from the cache (warm import against a .pyc).")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a rough figure)")
    quick = parser.parse_args(argv).quick
    repeat = 5 if quick else 21
    print(f"Python {sys.version.split()[0]}, conhook at {ROOT}")
    source = con_module()
    twin = async_twin(source)
    assert twin.count("\n") == source.count("\n")
    compile(twin, "<twin>", "exec")  # the twin is valid Python
    bench_cold("generated con module", source, twin, repeat)
    path = largest_stdlib_file()
    with open(path, encoding="utf-8") as file:
        text = file.read()
    bench_cold(f"{os.path.basename(path)} opted in as it is", text, text, repeat)
    probe = "\n\ndef _bench_probe():\n    idle@()\n"
    bench_cold(f"{os.path.basename(path)} with a non-atomic function appended", text + probe,
               text + probe.replace("def", "async def").replace("idle@()", "await idle()"), repeat)
    bench_warm(source, twin, 10 if quick else 41)
    bench_decline(path, repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
