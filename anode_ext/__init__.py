"""Anode: a Jupyter notebook as an event log, executed by a sandboxed Pyodide runtime."""

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    from .server.app import AnodeApp

    return [{"module": "anode_ext", "app": AnodeApp}]
