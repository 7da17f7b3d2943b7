# The con API for type checkers and editors (PEP 561): at run time `import con` is served from
# conhook/api.py by conhook's import hook, and there is no module file named con.
from conhook.api import *  # noqa: F403
from conhook.api import __all__ as __all__
