"""The toolchain: what reads con files without running them (formatting, linting, type
checking, the checker).  It imports the floor and the compiler only; ``python -m conhook
COMMAND`` reaches each command through ``conhook.__main__.SUBCOMMANDS``."""
