"""Kernels that join the notebook: an `anode-pyodide` kernel this server starts for
a document works that document's log here, not a private one.

jupyter-server passes the document's path to the kernels it starts for a
session (`JPY_SESSION_NAME`). The kernel's provisioner
(anode_ext.kernel.provisioner) asks this for the server's URL, the notebook
id of that path (its log is created from the file on first use) and a
credential good for that notebook only, so executions from JupyterLab, from
the REST API and from other collaborators share one queue, one runtime, and
one history.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

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

    async def kernel_env(self, session_name: str, kernel_id: str) -> dict[str, str] | None:
        """The environment that joins a kernel to its document's log (None: it
        is not started for a notebook document under the root)."""
        path = self.documents.document(session_name)
        if path is None:
            return None
        notebook_id = await self.documents.notebook_for(path)
        self.forget(kernel_id)  # a restart: the old credential goes
        credential = secrets.token_urlsafe(32)
        self.grants[credential] = Grant(notebook_id, kernel_id)
        log.info("kernel %s joins the log of %s", kernel_id, path)
        return {
            "ANODE_SERVER_URL": self.server_url,
            "ANODE_NOTEBOOK_ID": notebook_id,
            "ANODE_KERNEL_CREDENTIAL": credential,
        }

    def forget(self, kernel_id: str) -> None:
        for credential, grant in list(self.grants.items()):
            if grant.kernel_id == kernel_id:
                del self.grants[credential]
