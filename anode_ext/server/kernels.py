"""Kernels that join the notebook: an `anode-pyodide` kernel this server starts for
a document works that document's log here, not a private one.

jupyter-server passes the document's path to the kernels it starts for a
session (`JPY_SESSION_NAME`). For `anode-pyodide` kernels the extension adds
the server's URL, the notebook id of that path (its log is created from the
file on first use) and a credential good for that notebook only, so
executions from JupyterLab, from the REST API and from other collaborators
share one queue, one runtime, and one history.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..log import catalogue as ev
from ..log.ipynb import import_events, read_notebook
from ..log.rules import Identity
from .rooms import Notebooks

log = logging.getLogger(__name__)

KERNEL_NAME = "anode-pyodide"
KERNEL_USER = "anode-kernel"
KERNEL_RIGHTS = frozenset({"read", "write", "execute"})


@dataclass(frozen=True)
class Grant:
    """What a kernel's credential allows: its notebook, nothing else."""

    notebook_id: str
    kernel_id: str

    def identity(self, client_id: str) -> Identity:
        return Identity(KERNEL_USER, client_id, KERNEL_RIGHTS)


class KernelJoin:
    """Maps documents to notebook logs and hands their kernels credentials."""

    def __init__(self, notebooks: Notebooks, root_dir: Path, server_url: str) -> None:
        self.notebooks = notebooks
        self.root_dir = root_dir
        self.server_url = server_url
        self.grants: dict[str, Grant] = {}

    # -- documents -> notebooks ----------------------------------------------------
    @property
    def _index_path(self) -> Path:
        return self.notebooks.store_dir / "paths.json"

    def _index(self) -> dict[str, str]:
        try:
            index: dict[str, str] = json.loads(self._index_path.read_text())
            return index
        except (OSError, ValueError):
            return {}

    def document(self, session_name: str) -> str | None:
        """The API path of a session's document (jupyter-server passes it absolute
        or relative); None outside the root dir or not a notebook."""
        p = Path(session_name)
        try:
            p = (self.root_dir / p).resolve().relative_to(self.root_dir)
        except ValueError:
            return None
        return p.as_posix() if p.suffix == ".ipynb" else None

    async def notebook_for(self, path: str) -> str:
        """The notebook id of a document (its log made from the file on first use)."""
        index = self._index()
        found = index.get(path)
        if found is not None and self.notebooks.path(found).is_file():
            return found
        file = (self.root_dir / path).resolve()
        if file.is_file():
            events = import_events(read_notebook(file), Path(path).stem)
        else:
            events = [ev.NotebookInitialized(title=Path(path).stem)]
        room = self.notebooks.create()
        who = Identity("anode-server", f"import-{uuid.uuid4().hex}", KERNEL_RIGHTS)
        await room.hub.client(who).push([(uuid.uuid4().hex, e) for e in events])
        index[path] = room.id
        self.notebooks.store_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
        os.replace(tmp, self._index_path)
        return room.id

    # -- credentials -----------------------------------------------------------------
    def grant(self, credential: str) -> Grant | None:
        return self.grants.get(credential)

    async def kernel_env(self, path: str, kernel_id: str) -> dict[str, str]:
        notebook_id = await self.notebook_for(path)
        credential = secrets.token_urlsafe(32)
        self.grants[credential] = Grant(notebook_id, kernel_id)
        return {
            "ANODE_SERVER_URL": self.server_url,
            "ANODE_NOTEBOOK_ID": notebook_id,
            "ANODE_KERNEL_CREDENTIAL": credential,
        }

    def forget(self, kernel_id: str) -> None:
        for credential, grant in list(self.grants.items()):
            if grant.kernel_id == kernel_id:
                del self.grants[credential]

    # -- the kernel manager ----------------------------------------------------------
    def install(self, kernel_manager: Any) -> None:
        """Wrap the server's kernel manager: anode-pyodide kernels for a document join it."""
        start: Callable[..., Awaitable[str]] = kernel_manager.start_kernel
        shutdown: Callable[..., Awaitable[None]] = kernel_manager.shutdown_kernel
        default_name = getattr(kernel_manager, "default_kernel_name", "")

        async def start_kernel(*args: Any, **kwargs: Any) -> str:
            name = kwargs.get("kernel_name") or default_name
            env = dict(kwargs.get("env") or {})
            path = self.document(env.get("JPY_SESSION_NAME") or "")
            if name == KERNEL_NAME and path is not None and not kwargs.get("kernel_id"):
                kernel_id = str(uuid.uuid4())
                env.update(await self.kernel_env(path, kernel_id))
                kwargs.update(env=env, kernel_id=kernel_id)
                log.info("kernel %s joins the log of %s", kernel_id, path)
            return await start(*args, **kwargs)

        async def shutdown_kernel(kernel_id: str, *args: Any, **kwargs: Any) -> None:
            self.forget(kernel_id)
            await shutdown(kernel_id, *args, **kwargs)

        kernel_manager.start_kernel = start_kernel
        kernel_manager.shutdown_kernel = shutdown_kernel
