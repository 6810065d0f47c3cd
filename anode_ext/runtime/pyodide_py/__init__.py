"""Python code that runs *inside* Pyodide, in the Node host's worker.

The host mounts this directory read-only at ``/opt/anode/lib/anode_pyodide``
and imports it as ``anode_pyodide``: an IPython shell with ipykernel's
semantics whose outputs, input requests and ``%pip`` requests go to the host
through a small JavaScript bridge (see ``js/worker.mjs``). Only relative
imports are used inside, so the package works under either name.
"""
