"""The prejoin and failure rules as properties over random trees of threads (hypothesis)."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conhook._runtime.backends import available

from .helpers import con, prejoining, run


class Failure(Exception):
    pass


# A node: (switches before acting, fails?, children); a leaf has no children.
nodes = st.recursive(
    st.tuples(st.integers(0, 3), st.booleans(), st.just(())),
    lambda children: st.tuples(st.integers(0, 3), st.booleans(),
                               st.lists(children, max_size=3).map(tuple)),
    max_leaves=12)


def build(node, path, log):
    """A prejoining function for `node`: starts its children, switches, maybe fails."""
    switches, fails, children = node

    @prejoining
    async def function(scope):
        for i, child in enumerate(children):
            scope.start(build(child, f"{path}.{i}", log))
        try:
            for _ in range(switches):
                await con.idle()
            if fails:
                log.append(("raise", path))
                raise Failure(path)
        except con.Interrupted:
            log.append(("interrupted", path))
            raise
    return function


def wrap(fn, path, log):
    async def run_and_record():
        try:
            await fn()
        finally:
            log.append(("done", path))
    return run_and_record


def descendants(path, log):
    return [p for kind, p in log if kind == "done" and p.startswith(path + ".")]


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(nodes)
def test_prejoin_and_the_first_failure_rule(backend, tree):
    if backend != available()[0]:
        return  # the rule does not depend on the backend: checked once
    log = []

    def instrument(node, path):
        switches, fails, children = node
        inner = build((switches, fails, ()), path, log)  # the node's own body

        @prejoining
        async def function(scope):
            for i, child in enumerate(children):
                scope.start(wrap(instrument(child, f"{path}.{i}"), f"{path}.{i}", log))
            await inner()
        return function

    root = wrap(instrument(tree, "r"), "r", log)
    try:
        run(root)
        raised = None
    except Failure as exc:
        raised = exc

    done_order = [p for kind, p in log if kind == "done"]
    # Prejoin: every invocation finished after all the threads it started.
    for i, path in enumerate(done_order):
        assert all(done_order.index(d) < i for d in descendants(path, log)), (path, log)
    raises = [p for kind, p in log if kind == "raise"]
    if not raises:
        assert raised is None
        return
    # A failure comes out, unwrapped (the first to reach each scope on its way up; a failure
    # inside a thread reaches its scope only once that thread's own threads have finished),
    # and every other one is attached to it: none is lost.
    assert raised is not None
    def everything(exc):  # the exception and what is attached to it, transitively
        yield str(exc)
        for later in getattr(exc, "later_failures", []):
            yield from everything(later)
    assert sorted(everything(raised)) == sorted(raises), (raises, log)
