"""How an `anode-pyodide` kernel that a Jupyter server starts joins its notebook.

jupyter_client's hook for a kernel's launch is the kernel provisioner: the
kernelspec names this one (`metadata.kernel_provisioner`), and it is
registered under the `jupyter_client.kernel_provisioners` entry point. It
launches the kernel as the local provisioner does; before that, if a server
in this process serves notebook logs (`serve_joins`), it asks it for the
environment that makes the kernel work the log of the document it is started
for (`JPY_SESSION_NAME`): the server's URL, the notebook id and a credential
for that notebook only, dropped when the kernel is shut down for good. A
restart asks again; a kernel started anywhere else (nbclient, `jupyter
console`) gets nothing and keeps a log of its own.

With the warm pool on (``ANODE_POOL=1`` in the kernel's environment), the
launch takes a standby kernel from the kernel pool (``pool``) when one is
ready, and spawns one as usual otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
from typing import Any, Protocol

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from ..runtime.launch import pool_setting

PROVISIONER_NAME = "anode-provisioner"


class Joins(Protocol):
    """What serves joins: the server extension's `KernelJoin`."""

    async def kernel_env(self, session_name: str, kernel_id: str) -> dict[str, str] | None:
        """The environment that joins the kernel to the document's log; None: no join."""
        ...

    def forget(self, kernel_id: str) -> None:
        """The kernel is gone: its credential is no longer good."""
        ...


_joins: Joins | None = None


def serve_joins(joins: Joins | None) -> None:
    """Kernels started in this process from now on join through `joins` (None: stop)."""
    global _joins
    _joins = joins


class AnodeProvisioner(LocalProvisioner):
    """The local provisioner, plus the join to the notebook's log."""

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        joins = _joins
        if joins is not None and self.kernel_id:
            env = dict(kwargs.get("env") or os.environ)
            extra = await joins.kernel_env(env.get("JPY_SESSION_NAME", ""), str(self.kernel_id))
            if extra:
                env.update(extra)
                kwargs["env"] = env
        result: dict[str, Any] = await super().pre_launch(**kwargs)
        return result

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        if pool_setting(kwargs.get("env") or os.environ):
            from . import pool

            taken = await asyncio.to_thread(pool.take, cmd, kwargs)
            if taken is not None:
                self.process = taken  # type: ignore[assignment]  # a Popen look-alike
                self.pid = taken.pid
                self.pgid = None
                with contextlib.suppress(OSError):
                    self.pgid = os.getpgid(taken.pid)
                self.cwd = kwargs.get("cwd", pathlib.Path.cwd())
                return self.connection_info
        info: KernelConnectionInfo = await super().launch_kernel(cmd, **kwargs)
        return info

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if not restart and _joins is not None and self.kernel_id:
            _joins.forget(str(self.kernel_id))
