"""Notebook documents (`.ipynb` files under the server's root) and the logs that are them.

A document's log is made from the file on first use (`paths.json` in the
store directory maps documents to logs). From then on the file follows the
log: it is written from the log's state through jupyter-server's contents
manager (so its save hooks run), debounced, and at once on Save. A change
made to the file by something else (git pull, an editor) is read back and
becomes events by user `disk`, through the same path as a browser's edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from pathlib import Path
from typing import Any

from jupyter_core.utils import ensure_async

from ..log import catalogue as ev
from ..log.document import NotebookDoc, encode_update
from ..log.envelope import Envelope
from ..log.errors import Refused
from ..log.ipynb import (
    NotebookFormatError,
    export_notebook,
    import_events,
    read_notebook,
    validated,
)
from ..log.materialize import fold_all
from ..log.rules import ALL_RIGHTS, Identity
from ..log.state import State
from .rooms import SERVER, Notebooks, Room

log = logging.getLogger(__name__)


class Documents:
    """Maps documents to notebook logs; writes the files from the logs and reads them back."""

    def __init__(
        self,
        notebooks: Notebooks,
        root_dir: Path,
        contents_manager: Any = None,
        *,
        debounce: float = 1.0,
        poll: float = 2.0,
    ) -> None:
        self.notebooks = notebooks
        self.root_dir = root_dir
        self.contents = contents_manager
        self.debounce = debounce
        self.poll = poll
        self._written: dict[str, tuple[str, float | None]] = {}  # path -> (text, mtime) we wrote
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self._writing: dict[str, asyncio.Lock] = {}
        self._watch: asyncio.Task[None] | None = None
        self._burst: dict[str, tuple[float, float]] = {}  # path -> (first, last) change
        notebooks.on_change.append(self.changed)
        notebooks.on_save = self.save

    # -- documents -> notebooks ----------------------------------------------------
    def document(self, session_name: str) -> str | None:
        """The API path of a document (jupyter-server passes it absolute or
        relative); None outside the root dir or not a notebook."""
        p = Path(session_name)
        try:
            p = (self.root_dir / p).resolve().relative_to(self.root_dir)
        except ValueError:
            return None
        return p.as_posix() if p.suffix == ".ipynb" else None

    def path_of(self, notebook_id: str) -> str | None:
        return self.notebooks.path_of(notebook_id)

    async def notebook_for(self, path: str, *, new: bool = True) -> str:
        """The notebook id of a document (its log made from the file on first
        use). With `new` False, KeyError for a path with no log and no file:
        a reader may mirror a file it can read into a log (which writes nothing
        back), never start a notebook that does not exist."""
        found = await self.notebooks.notebook_of(path)
        if found is not None:
            return found
        file = (self.root_dir / path).resolve()
        if file.is_file():
            events = import_events(read_notebook(file), Path(path).stem)
            if not any(isinstance(e, ev.CellCreated) for e in events):
                # A new notebook (JupyterLab's launcher makes it without cells):
                # one empty cell to type in, as JupyterLab would add.
                empty = ev.CellCreated(
                    cell_id=uuid.uuid4().hex, cell_type="code", source="", position="V"
                )
                events.append(empty)
        elif not new:
            raise KeyError(path)
        else:
            events = [ev.NotebookInitialized(title=Path(path).stem)]
        room = await self.notebooks.create()
        who = Identity("anode-server", f"import-{uuid.uuid4().hex}", ALL_RIGHTS)
        await room.hub.client(who).push([(uuid.uuid4().hex, e) for e in events])
        bound = await self.notebooks.bind(path, room.id)
        if bound != room.id:  # another replica made it first: its log is the document
            return bound
        if file.is_file():
            self._written[path] = (_text(room.store.state), file.stat().st_mtime)
        return room.id

    # -- the file follows the log ------------------------------------------------------
    def changed(self, room: Room) -> None:
        """The log moved: write the file once it has been still for `debounce`
        seconds (someone typing does not pay for a write a second), and at
        least every ten times that during a long burst."""
        if self.contents is None or not room.hub.leading:
            return  # (several replicas: the notebook's leader writes its file)
        path = self.path_of(room.id)
        if path is None or not room.store.state.on_anode():
            return  # (a notebook of another kernel: JupyterLab saves it)
        loop = asyncio.get_event_loop()
        now = loop.time()
        first, _ = self._burst.get(path, (now, now))
        self._burst[path] = (first, now)
        if path not in self._timers:
            self._timers[path] = loop.call_later(self.debounce, self._due, path, room)

    def _due(self, path: str, room: Room) -> None:
        loop = asyncio.get_event_loop()
        first, last = self._burst.get(path, (0.0, 0.0))
        wait = last + self.debounce - loop.time()
        if wait > 0 and loop.time() - first < 10 * self.debounce:
            self._timers[path] = loop.call_later(wait, self._due, path, room)
            return
        self._timers.pop(path, None)
        self._burst.pop(path, None)
        task = asyncio.ensure_future(self._debounced(path, room))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _debounced(self, path: str, room: Room) -> None:
        try:
            await self.write(path, room)
        except Exception:
            log.exception("writing %s from its log failed", path)

    async def save(self, path: str, room: Room) -> dict[str, Any]:
        """JupyterLab's Save: the file written now, with a checkpoint. Only the
        notebook's leader writes its file: another replica asks it to and waits
        for the leader's 'saved' (a file written from a log a few events behind
        would read back on the leader as an edit that undoes them)."""
        if room.hub.leading:
            return await self.write(path, room, checkpoint=True)
        await self.notebooks.save_at_leader(room, path)
        return await self._model(path)

    async def write(self, path: str, room: Room, *, checkpoint: bool = False) -> dict[str, Any]:
        """Write the file from the log now (if it differs); the contents model, without content."""
        lock = self._writing.setdefault(path, asyncio.Lock())
        async with lock:
            # Changed on disk since our last write (not read back yet): take that
            # change into the log first, so this write keeps it.
            written = self._written.get(path)
            if written is not None and _mtime(self.root_dir / path) != written[1]:
                await self.read_back(path, room)
            text, head = _text(room.store.state), room.store.head
            written = self._written.get(path)
            model: dict[str, Any]
            if written is not None and written[0] == text and not checkpoint:
                return await self._model(path)
            nb = json.loads(text)
            await ensure_async(
                self.contents.save({"type": "notebook", "format": "json", "content": nb}, path)
            )
            if checkpoint:
                with contextlib.suppress(Exception):
                    await ensure_async(self.contents.create_checkpoint(path))
            self._written[path] = (text, _mtime(self.root_dir / path))
            # With its hash: JupyterLab compares it before a save ("File Changed").
            model = await self._model(path)
        await self.notebooks.broadcast(
            room,
            {
                "type": "saved",
                "path": path,
                "last_modified": model.get("last_modified"),
                "hash": model.get("hash"),
                "hash_algorithm": model.get("hash_algorithm"),
                "head": head,  # the file holds the log up to this seq
            },
        )
        return model

    async def _model(self, path: str) -> dict[str, Any]:
        try:
            model = await ensure_async(self.contents.get(path, content=False, require_hash=True))
        except TypeError:  # a contents manager without hashes
            model = await ensure_async(self.contents.get(path, content=False))
        # Times as ISO 8601 strings, as the contents API sends them.
        result: dict[str, Any] = json.loads(json.dumps(model, default=_iso))
        return result

    # -- the log follows changes made on disk ---------------------------------------------
    def start(self) -> None:
        if self._watch is None and self.contents is not None and self.poll > 0:
            self._watch = asyncio.ensure_future(self._watch_loop())

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            for notebook_id, room in list(self.notebooks.rooms.items()):
                path = self.path_of(notebook_id)
                # A notebook of another kernel is JupyterLab's file: never read back.
                if path is None or path in self._timers or not room.store.state.on_anode():
                    continue
                if not room.hub.leading:
                    continue  # the leader reads the file (several replicas, one reader)
                try:
                    await self.read_back(path, room)
                except Exception:
                    log.exception("reading %s back into its log failed", path)

    async def read_back(self, path: str, room: Room) -> int | None:
        """If the file changed since we wrote it, its changes as events by `disk`;
        the seq of the update, if anything changed."""
        file = self.root_dir / path
        mtime = _mtime(file)
        written = self._written.get(path)
        if mtime is None or (written is not None and written[1] == mtime):
            return None
        try:
            nb = read_notebook(file)
        except NotebookFormatError as err:
            log.warning("%s changed on disk but is not a notebook now: %s", path, err)
            self._written[path] = (written[0] if written else "", mtime)
            return None
        if room.store.document is None:
            await room.hub.sync_document(SERVER)  # a change on disk is a document edit too
            room.hub.wake()
        assert room.store.document is not None
        update = disk_update(room.store.state, room.store.document, nb)
        seq = None
        if update:
            who = Identity("disk", f"disk-{uuid.uuid4().hex}", ALL_RIGHTS)
            event = ev.DocumentUpdated(update=encode_update(update))
            try:
                (seq,) = await room.hub.client(who).push([(uuid.uuid4().hex, event)])
            except Refused as err:
                log.warning("%s changed on disk; the change was refused: %s", path, err.reason)
        self._written[path] = (_text(room.store.state), mtime)
        return seq


def disk_update(state: State, document: NotebookDoc, nb: Any) -> bytes:
    """The Yjs update that turns `document` into the notebook `nb` (read from a file),
    made on a copy: the log appends it as any client's update."""
    events = enumerate(import_events(validated(nb)), 1)
    scratch = fold_all(State(), (Envelope(n, "", e.name, e, "disk", "disk", 0) for n, e in events))
    copy = NotebookDoc(document.encode(), client_id=None)
    # What the file cannot say (the queue, who runs what) stays as the log has it.
    scratch.t.executions = state.t.executions
    return copy.project(scratch)


def _text(state: State) -> str:
    return json.dumps(export_notebook(state), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _iso(value: Any) -> str:
    iso = getattr(value, "isoformat", None)
    return str(iso()) if iso is not None else str(value)


def _mtime(file: Path) -> float | None:
    try:
        return file.stat().st_mtime
    except OSError:
        return None
