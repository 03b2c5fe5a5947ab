"""The installed connectzap's version (``connectzap.__version__``); hatch reads it from here."""

__version__ = "0.1.0"
