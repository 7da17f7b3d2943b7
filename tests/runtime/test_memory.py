"""Finished threads are forgotten at once: a long-lived function starting a million siblings."""
from __future__ import annotations

import gc
import sys

import pytest

import conhook.api as con
from conhook._runtime.backends import available

from .helpers import prejoining, run

resource = pytest.importorskip("resource")


def peak_rss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def test_a_million_sequential_siblings_keep_memory_flat(backend):
    if backend != available()[0]:
        pytest.skip("memory does not depend on the backend; measured once")

    async def short(i):
        return i

    @prejoining
    async def server(scope, batches, per_batch, marks):
        for b in range(batches):
            for i in range(per_batch):
                scope.start(short, i)
            await con.idle()  # every one of this batch runs and finishes
            assert scope.live == 0
            if b in (batches // 10, batches - 1):
                gc.collect()
                marks.append(peak_rss_bytes())

    marks = []
    run(server, 10_000, 100, marks)
    growth = marks[1] - marks[0]
    # ~900,000 threads started after the first mark; anything kept per thread would show as
    # hundreds of megabytes.  The bound is generous: allocator noise only.
    assert growth < 20 * 1024 * 1024, growth
