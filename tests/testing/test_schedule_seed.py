"""CONHOOK_SCHEDULE_SEED: simultaneously ready threads run in a shuffled, reproducible order."""
from __future__ import annotations

import pytest

from .helpers import bootstrap, con, prejoining

N = 12


def first_steps():
    """The order in which N threads, started together, take their first two steps."""
    log = []

    async def worker(i):
        log.append(i)
        await con.idle()
        log.append(i)

    @prejoining
    async def main(scope):
        for i in range(N):
            scope.start(worker, i)
    bootstrap(main)
    return log[:N], log[N:]


def test_without_a_seed_the_order_is_fifo():
    assert first_steps() == (list(range(N)), list(range(N)))


def test_a_seed_shuffles_reproducibly(monkeypatch):
    runs = {}
    for seed in ("1", "2", "3", "1"):
        monkeypatch.setenv("CONHOOK_SCHEDULE_SEED", seed)
        runs.setdefault(seed, []).append(first_steps())
    assert runs["1"][0] == runs["1"][1]  # same seed, same run
    orders = {tuple(run[0][0]) for run in runs.values()}
    assert len(orders) == 3 and tuple(range(N)) not in orders
    for first, second in (run[0] for run in runs.values()):
        assert sorted(first) == sorted(second) == list(range(N))  # everyone runs once per turn
        assert first != second  # and every turn is shuffled anew


def test_random_seed_is_printed(monkeypatch, capsys):
    monkeypatch.setenv("CONHOOK_SCHEDULE_SEED", "random")
    first_steps()
    err = capsys.readouterr().err
    assert err.startswith("conhook: CONHOOK_SCHEDULE_SEED=")
    seed = err.strip().split("=")[1]
    assert seed.isdigit()


@pytest.mark.parametrize("seed", range(20))
def test_prejoin_and_failures_hold_under_any_schedule(monkeypatch, seed):
    monkeypatch.setenv("CONHOOK_SCHEDULE_SEED", str(seed))
    cleaned = []

    async def leaf(i):
        try:
            for _ in range(i % 4):
                await con.idle()
            if i == 7:
                raise KeyError(i)
            await con.Event().wait()  # only an interruption gets it out
        finally:
            cleaned.append(i)

    @prejoining
    async def branch(scope, base):
        for i in range(base, base + 5):
            scope.start(leaf, i)

    @prejoining
    async def main(scope):
        scope.start(branch, 0)
        scope.start(branch, 5)
        scope.start(branch, 10)

    with pytest.raises(KeyError) as info:
        bootstrap(main)
    assert info.value.args == (7,)
    assert sorted(cleaned) == list(range(15))


def test_queue_keeps_its_fifo_hand_over_under_a_seed(monkeypatch):
    monkeypatch.setenv("CONHOOK_SCHEDULE_SEED", "5")
    got = []

    @prejoining
    async def main(scope):
        queue = con.Queue()

        async def producer(base):
            for i in range(5):
                await queue.put((base, i))
                await con.idle()
        scope.start(producer, 0)
        scope.start(producer, 1)
        for _ in range(10):
            got.append(await queue.get())
    bootstrap(main)
    for base in (0, 1):  # each producer's items arrive in the order it put them
        assert [i for b, i in got if b == base] == list(range(5))
