"""The benchmarks' C load generators (tools/loadgen.c, tools/loadgen_tls.c): they keep what they share in
tools/loadgen_common.h, not twice, and build the way tools/bench_echo.py builds them."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
CC = os.environ.get("CC", "cc")
_FUNCTION = re.compile(r"^static [\w\s*]*?\b(\w+)\(", re.MULTILINE)


def test_the_load_generators_include_their_common_part_and_repeat_none_of_it():
    common = set(_FUNCTION.findall((TOOLS / "loadgen_common.h").read_text()))
    assert {"now_ns", "die", "set_up", "new_socket", "record", "percentile_us", "cpu_percent"} <= common
    for name in ("loadgen.c", "loadgen_tls.c"):
        text = (TOOLS / name).read_text()
        assert '#include "loadgen_common.h"' in text, name
        assert set(_FUNCTION.findall(text)) & common == set(), name


def _echo_server(listener):
    def serve(conn):
        with conn, contextlib.suppress(OSError):  # (reset when the load generator stops mid-echo)
            while data := conn.recv(65536):
                conn.sendall(data)

    while True:
        try:
            conn, _ = listener.accept()
        except OSError:  # the listener was closed: the test is over
            return
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


@pytest.mark.skipif(shutil.which(CC) is None, reason=f"no C compiler ({CC})")
def test_loadgen_builds_as_bench_echo_does_and_drives_an_echo_server(tmp_path):
    exe = tmp_path / "loadgen"
    subprocess.run([CC, "-O2", "-o", str(exe), str(TOOLS / "loadgen.c")], check=True)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        threading.Thread(target=_echo_server, args=(listener,), daemon=True).start()
        out = subprocess.run([str(exe), "--port", str(listener.getsockname()[1]), "--conns", "2",
                              "--size", "100", "--duration", "0.2", "--warmup", "0"],
                             capture_output=True, text=True, timeout=60)
    result = json.loads(out.stdout)
    assert (out.returncode, result["errors"], result["conns"], result["size"]) == (0, 0, 2, 100)
    assert result["requests"] > 0


@pytest.mark.skipif(shutil.which(CC) is None, reason=f"no C compiler ({CC})")
def test_loadgen_tls_builds_as_bench_tls_does(tmp_path):
    exe = tmp_path / "loadgen_tls"
    built = subprocess.run([CC, "-O2", "-o", str(exe), str(TOOLS / "loadgen_tls.c"), "-lssl", "-lcrypto"],
                           capture_output=True, text=True)
    if built.returncode and "openssl/" in built.stderr:
        pytest.skip("no OpenSSL headers (libssl-dev)")
    assert built.returncode == 0, built.stderr
    usage = subprocess.run([str(exe), "--bogus"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "[--handshakes] [--cafile CA.pem] [--hold]" in usage.stderr
