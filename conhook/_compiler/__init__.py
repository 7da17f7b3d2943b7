"""The compiler: con source to code objects whose non-atomic functions are coroutines.

    tokens          the token layer: f@(a) and sibling g@(x) become markers, at token positions
    ast_step        the AST step: con syntax rejected where it cannot stand, prejoin scopes added
    bytecode_layer  the bytecode layer: each marker becomes the interpreter's own await sequence
    versions        what differs between Python versions, in one place
    pipeline        the stages in order, as every entry point uses them
    positions       columns of the rewritten text mapped back to what the user wrote
    tokens_311      what only Python 3.11 needs of the token layer

It imports nothing of the runtime: only ``conhook._reserved_names`` and the ``bytecode`` package.
"""
