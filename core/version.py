"""The version of abgate, here so that packages below the CLI can report it."""

__all__ = ["__version__"]

__version__ = "0.1.0"
