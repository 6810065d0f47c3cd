"""Anode: a Jupyter notebook as an event log, executed by a sandboxed Pyodide runtime."""

__version__ = "0.1.0"
