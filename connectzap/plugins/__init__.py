"""Bundled behaviours that are not tied to one system. Each module is an ordinary plugin."""
