"""Helpers for driving compiled con code by hand (before and beside the runtime)."""
import textwrap

from conhook._compiler.pipeline import compile_con


class Park:
    """An awaitable that suspends once, yielding ``tag``; resumes with what is sent."""

    def __init__(self, tag="park"):
        self.tag = tag

    def __await__(self):
        return (yield self.tag)


async def park(tag="park"):
    return await Park(tag)


def con(source, filename="<con-test>", **namespace):
    """Compile ``source`` with the con pipeline and execute it; return the namespace."""
    code = compile_con(textwrap.dedent(source), filename)
    ns = {"Park": Park, "park": park, "__name__": "contest"}
    ns.update(namespace)
    exec(code, ns)
    return ns


def run(coro, send=lambda tag, step: step):
    """Drive ``coro`` to the end; return (result, [yielded tags])."""
    tags = []
    value = None
    while True:
        try:
            tag = coro.send(value)
        except StopIteration as stop:
            return stop.value, tags
        tags.append(tag)
        value = send(tag, len(tags))
