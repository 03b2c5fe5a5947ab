"""Connectors: one package per external system, each registered like any third-party plugin."""
