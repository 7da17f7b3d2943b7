"""conhook's version: a leaf, so that the import hook's cache key can read it without
importing the package (``conhook/__init__`` imports the hook).  pyproject.toml reads it too."""

__version__ = "0.2.0"
