"""The names and code flags that compiled con code and the runtime share: the floor every
layer stands on.

The compiler writes them into the code it produces; the runtime and the front ends look them
up in namespaces, frames and code objects.  This module imports nothing, so that both sides can read the
names without importing each other.  Users may not write a name beginning ``__con_`` in con
code (the token layer rejects it), so none of these can clash with a user's name.
"""

RESERVED_PREFIX = "__con_"

RUNTIME_NAME = "__con__"            # a module's global: the runtime that compiled code calls (prejoin)
AWAIT_MARKER = "__con_await__"      # f@(a) is written f(a).__con_await__ until the bytecode layer
SIBLING_MARKER = "__con_sibling__"  # sibling g@(x) is written __con_sibling__@g(x) until the AST step
SCOPE_NAME = "__con_scope__"        # the local holding a function's prejoin scope
EXC_NAME = "__con_exc__"            # the local naming a failure on its way through the scope
RESULT_NAME = "__con_result__"      # a cell's or REPL line's value, kept for display

# The code flags that tell what the compiler made (CPython's values: ``inspect`` has them too,
# but importing it costs 7 ms, most of the runtime's import).
CO_COROUTINE = 0x0080           # a coroutine function: every non-atomic function
CO_GENERATOR = 0x0020
CO_ITERABLE_COROUTINE = 0x0100  # a @types.coroutine generator
CO_ASYNC_GENERATOR = 0x0200
