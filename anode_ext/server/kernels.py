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

import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..kernel import KERNEL_NAME
from ..log.rules import Identity
from .documents import Documents

log = logging.getLogger(__name__)

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

    def __init__(self, documents: Documents, server_url: str) -> None:
        self.documents = documents
        self.server_url = server_url
        self.grants: dict[str, Grant] = {}

    # -- credentials -----------------------------------------------------------------
    def grant(self, credential: str) -> Grant | None:
        return self.grants.get(credential)

    async def kernel_env(self, path: str, kernel_id: str) -> dict[str, str]:
        notebook_id = await self.documents.notebook_for(path)
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
            path = self.documents.document(env.get("JPY_SESSION_NAME") or "")
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
