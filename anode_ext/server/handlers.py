"""REST and websocket handlers: bytes in, bytes out; the rules live in the log.

Every handler authenticates through jupyter-server and asks its authorizer
for the `anode` resource. The identity of a push is the authenticated user
with the rights the authorizer grants (read, write, execute); nothing the
client sends can change it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.auth.identity import User
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..log import Identity
from ..log.document import encode_update
from ..log.errors import Refused, StoreError
from ..log.ipynb import NotebookFormatError, export_notebook, import_events
from ..log.state import State
from ..log.sync import ProtocolError, PullMessage, PushMessage, parse_message
from ..log.view import state_json
from .documents import Documents
from .kernels import KERNEL_USER, Grant, KernelJoin
from .rooms import SERVER, Notebooks, Room

AUTH_RESOURCE = "anode"
# The rate limit's clock (a test holds it still to count a burst exactly).
clock = time.monotonic
log = logging.getLogger(__name__)

ACTIONS = ("read", "write", "execute")


class _Base(ExtensionHandlerMixin):
    auth_resource = AUTH_RESOURCE

    def _unavailable(self, status_code: int, kwargs: dict[str, Any]) -> int:
        """A store that cannot be used (its database unreachable, its file not a
        store) answers 503 with why, not a bare 500: an HTTPError in its place."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if not isinstance(exc, StoreError):
            return status_code
        self.set_status(503)  # type: ignore[attr-defined]
        kwargs["exc_info"] = (web.HTTPError, web.HTTPError(503, str(exc)), None)
        return 503

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        super().write_error(self._unavailable(status_code, kwargs), **kwargs)  # type: ignore[misc]

    @property
    def notebooks(self) -> Notebooks:
        nbs: Notebooks = self.settings["anode_notebooks"]
        return nbs

    async def room_or_404(self, notebook_id: str) -> Room:
        try:
            return await self.notebooks.room(notebook_id)
        except KeyError:
            raise web.HTTPError(404, f"no notebook {notebook_id!r}") from None

    async def identity(self, client_id: str | None = None) -> Identity:
        """The authenticated user and the rights the authorizer gives them here."""
        user = self.current_user  # type: ignore[attr-defined]
        rights = set()
        for action in ACTIONS:
            allowed = self.authorizer.is_authorized(self, user, action, AUTH_RESOURCE)  # type: ignore[attr-defined]
            if await ensure_async(allowed):
                rights.add(action)
        cid = client_id if client_id and len(client_id) <= 128 else uuid.uuid4().hex
        return Identity(user.username, cid, frozenset(rights))


def _int_arg(handler: APIHandler, name: str, default: int | None) -> int | None:
    raw = handler.get_argument(name, None)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPError(400, f"{name} must be an integer") from None
    if value < 0:
        raise web.HTTPError(400, f"{name} must be >= 0")
    return value


class _StateHandler(_Base, APIHandler):
    async def state_at_arg(self, notebook_id: str) -> State:
        """The notebook's state now, or as of `?at=SEQ`."""
        room = await self.room_or_404(notebook_id)
        at = _int_arg(self, "at", None)
        return room.store.state if at is None else await room.hub.state_at(at)


class NotebooksHandler(_Base, APIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish({"notebooks": await self.notebooks.list()})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.get_json_body() or {}
        if not isinstance(body, dict) or set(body) - {"title", "ipynb"}:
            raise web.HTTPError(400, "expected {}, {'title': T} or {'ipynb': {...}}")
        try:
            if "ipynb" in body:
                from ..log.ipynb import validated

                events = import_events(validated(body["ipynb"]), str(body.get("title", "")))
            else:
                from ..log import catalogue as ev

                events = [ev.NotebookInitialized(title=str(body.get("title", "")))]
        except NotebookFormatError as err:
            raise web.HTTPError(400, str(err)) from None
        room = await self.notebooks.create()
        who = await self.identity()
        await room.hub.client(who).push([(uuid.uuid4().hex, e) for e in events])
        self.set_status(201)
        self.finish({"id": room.id, "head": room.store.head})


class NotebookHandler(_StateHandler):
    @web.authenticated
    @authorized
    async def get(self, notebook_id: str) -> None:
        self.finish(state_json(await self.state_at_arg(notebook_id), notebook_id))


class ExportHandler(_StateHandler):
    @web.authenticated
    @authorized
    async def get(self, notebook_id: str) -> None:
        state = await self.state_at_arg(notebook_id)
        self.set_header("Content-Type", "application/x-ipynb+json")
        self.finish(json.dumps(export_notebook(state)))


class EventsHandler(_Base, APIHandler):
    @web.authenticated
    @authorized
    async def get(self, notebook_id: str) -> None:
        room = await self.room_or_404(notebook_id)
        after = _int_arg(self, "after", 0) or 0
        limit = _int_arg(self, "limit", None)
        raws = await room.hub.events_json(after, limit)
        self.set_header("Content-Type", "application/json")
        head = str(room.store.head).encode()
        self.finish(b'{"events":[' + b",".join(raws) + b'],"head":' + head + b"}")

    # Reading the notebook is enough to push: each event then needs the right
    # the log's rules name for it (an execution needs execute, an edit write),
    # as over the websocket.
    @web.authenticated
    @authorized("read")  # type: ignore[untyped-decorator]
    async def post(self, notebook_id: str) -> None:
        room = await self.room_or_404(notebook_id)
        who = await self.identity(self.get_argument("client_id", None))
        body = self.request.body
        try:
            parsed = json.loads(body)
            if not isinstance(parsed, dict) or set(parsed) != {"events"}:
                raise Refused(0, "expected {'events': [...]}")
            seqs = await room.hub.push_json(json.dumps(parsed["events"]).encode(), who)
        except (ValueError, Refused) as err:
            status = err.status if isinstance(err, Refused) else 400
            index = err.index if isinstance(err, Refused) else 0
            reason = err.reason if isinstance(err, Refused) else f"not JSON: {err}"
            self.set_status(status)
            self.finish({"index": index, "reason": reason})
            return
        self.finish({"seqs": seqs})

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A refused push answers `{index, reason}` whatever refused it (no right
        to read the notebook, no such notebook), as the log's own refusals do."""
        if self.request.method != "POST":
            super().write_error(status_code, **kwargs)
            return
        self._unavailable(status_code, kwargs)
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reason = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else None
        self.set_header("Content-Type", "application/json")
        self.finish({"index": 0, "reason": reason or self._reason})


class DocumentHandler(_Base, APIHandler):
    """`/anode/api/documents?path=P`: GET names the notebook whose log a
    document is (made from the file on first use); PUT writes the file from
    the log now (JupyterLab's Save) and answers its contents model."""

    @property
    def documents(self) -> Documents:
        docs: Documents = self.settings["anode_documents"]
        return docs

    def _path(self) -> str:
        path = self.documents.document(self.get_argument("path", ""))
        if path is None:
            raise web.HTTPError(400, "path must be a .ipynb file under the server's root")
        return path

    @web.authenticated
    @authorized
    async def get(self) -> None:
        path = self._path()
        who = await self.identity()
        try:
            notebook_id = await self.documents.notebook_for(path, new="write" in who.rights)
        except KeyError:
            raise web.HTTPError(404, f"no notebook at {path!r}") from None
        kernel = (await self.room_or_404(notebook_id)).store.state.kernel_name()
        self.finish({"id": notebook_id, "path": path, "kernel": kernel})

    @web.authenticated
    @authorized
    async def put(self) -> None:
        path = self._path()
        room = await self.room_or_404(await self.documents.notebook_for(path))
        try:
            self.finish(await self.documents.save(path, room))
        except TimeoutError as err:
            raise web.HTTPError(503, str(err)) from None


class NotebookDocumentHandler(_Base, APIHandler):
    """`GET /anode/api/notebooks/{id}/document`: the notebook's Yjs document as one
    update, and the head it is at: a client applies it, then pulls after that head."""

    @web.authenticated
    @authorized
    async def get(self, notebook_id: str) -> None:
        room = await self.room_or_404(notebook_id)
        store = room.store
        if store.document is None:
            await room.hub.sync_document(SERVER)  # its first reader: the log gets its document
            room.hub.wake()
        assert store.document is not None
        who = await self.identity()
        t = store.state.t
        waiting = [
            {
                "execution_id": i.execution_id,
                "cell_id": t.executions[i.execution_id].cell_id,
                "prompt": i.prompt,
                "password": i.password,
            }
            for i in t.inputs.values()
            if i.state == "pending" and i.execution_id in t.executions
        ]
        ran_by: dict[str, str] = {}  # cell -> who asked for its latest execution
        for ex in t.executions.values():  # in request order
            if ex.cell_id is not None:
                ran_by[ex.cell_id] = ex.requested_by
        self.finish(
            {
                "head": store.head,
                "update": encode_update(store.document.encode()),
                "writable": "write" in who.rights,
                "inputs": waiting,  # input() calls waiting at that head
                "user": who.user,
                # A tab trusts the outputs of what its own person ran (labextension trust.ts).
                "ran_by": ran_by,
            }
        )


class SyncHandler(_Base, WebSocketMixin, WebSocketHandler, JupyterHandler):
    """`/anode/api/notebooks/{id}/sync`: pull (then live) and push, as DESIGN.md pins them."""

    def set_default_headers(self) -> None:
        """Not for websockets (JupyterHandler sets HTML headers)."""

    async def prepare(self) -> None:  # type: ignore[override]
        # A kernel this server started presents its own credential (see
        # server.kernels): good for its notebook only, never for anything else.
        scheme, _, credential = self.request.headers.get("Authorization", "").partition(" ")
        self.grant: Grant | None = None
        if scheme == "anode-kernel":
            kernels: KernelJoin | None = self.settings.get("anode_kernels")
            self.grant = kernels.grant(credential) if kernels is not None else None
            if self.grant is None:
                raise web.HTTPError(403, "unknown kernel credential")
            self.current_user = self._jupyter_current_user = User(username=KERNEL_USER)
            return
        await super().prepare()

    @ws_authenticated
    async def get(self, notebook_id: str) -> None:
        user = self.current_user
        client_id = self.get_argument("client_id", None)
        if self.grant is not None:
            if self.grant.notebook_id != notebook_id:
                raise web.HTTPError(403, "this credential is for another notebook")
            self.room = await self.room_or_404(notebook_id)
            cid = client_id if client_id and len(client_id) <= 128 else uuid.uuid4().hex
            self.who = self.grant.identity(cid)
        else:
            allowed = self.authorizer.is_authorized(self, user, "read", AUTH_RESOURCE)
            if not await ensure_async(allowed):
                raise web.HTTPError(403)
            self.room = await self.room_or_404(notebook_id)
            self.who = await self.identity(client_id)
        self.sub: Any = None
        await super().get(notebook_id)

    def open(self, notebook_id: str) -> None:
        super().open()
        # push_ok and the events that follow are small writes back to back:
        # without this, Nagle holds the second for the client's delayed ACK (~40 ms).
        self.set_nodelay(True)
        self.room.attach(self.who.client_id)
        self.attached = True

    def _over_rate(self) -> bool:
        """A token bucket per connection: `anode_rate` a second, bursts of twice that."""
        rate: float = self.settings.get("anode_rate", 0.0)
        if rate <= 0:
            return False
        now = clock()
        tokens, last = getattr(self, "_bucket", (2 * rate, now))
        tokens = min(2 * rate, tokens + (now - last) * rate)
        if tokens < 1:
            self._bucket = (tokens, now)
            return True
        self._bucket = (tokens - 1, now)
        return False

    async def on_message(self, message: str | bytes) -> None:
        limits = self.notebooks.limits
        if self._over_rate():
            rate = self.settings.get("anode_rate")
            reason = f"rate limit: more than {rate:g} messages a second; slow down and retry"
            try:
                req = parse_message(message)
            except ProtocolError:
                req = None
            if isinstance(req, PushMessage):
                self._send(
                    {
                        "type": "push_refused",
                        "req": req.req,
                        "index": 0,
                        "reason": reason,
                        "status": 429,
                    }
                )
            else:
                self._send({"type": "error", "reason": reason})
            return
        if len(message) > limits.max_batch_bytes + 1024:
            self._send({"type": "error", "reason": "message too large"})
            return
        try:
            msg = parse_message(message)
        except ProtocolError as err:
            self._send({"type": "error", "reason": str(err)})
            return
        if isinstance(msg, PullMessage):
            if self.sub is not None:
                self.room.unsubscribe(self.sub)
            max_lag = self.settings.get("anode_max_lag", 100_000)
            # A kernel's connection hears an append after the people's tabs.
            person = self.grant is None
            self.sub = self.room.subscribe(_Conn(self), msg.after, max_lag, person=person)
            return
        try:
            seqs = await self.room.hub.push_json(bytes(msg.events), self.who)
            # The events before the acknowledgement, to the other tabs first.
            self.room.fanout(last=self.sub)
            answer: dict[str, Any] = {"type": "push_ok", "req": msg.req, "seqs": seqs}
        except Refused as err:
            answer = {
                "type": "push_refused",
                "req": msg.req,
                "index": err.index,
                "reason": err.reason,
                "status": err.status,
            }
        except Exception:
            # Not a refusal: the store could not say (its database went away
            # mid-write, say). The client reconnects and sends the push again
            # with the same ids: either it is there, or it is appended now.
            log.exception("a push to notebook %s failed", self.room.id)
            self.close(1011, "the log could not be written; reconnect and send again")
            return
        self._send(answer)

    def _send(self, obj: dict[str, Any]) -> None:
        try:
            self.write_message(json.dumps(obj))
        except WebSocketClosedError:
            pass

    def on_close(self) -> None:
        if getattr(self, "sub", None) is not None:
            self.room.unsubscribe(self.sub)
        if getattr(self, "attached", False):
            self.attached = False
            self.room.detach(self.who.client_id)


class _Conn:
    def __init__(self, handler: SyncHandler) -> None:
        self.handler = handler

    def write(self, message: str) -> Awaitable[None]:
        return self.handler.write_message(message)

    def close(self, code: int, reason: str) -> None:
        self.handler.close(code, reason)


def handlers(base: str = "/anode/api") -> list[tuple[str, type]]:
    nb = r"/notebooks/(?P<notebook_id>[A-Za-z0-9_-]+)"
    return [
        (f"{base}/notebooks", NotebooksHandler),
        (f"{base}/documents", DocumentHandler),
        (f"{base}{nb}", NotebookHandler),
        (f"{base}{nb}/events", EventsHandler),
        (f"{base}{nb}/export", ExportHandler),
        (f"{base}{nb}/document", NotebookDocumentHandler),
        (f"{base}{nb}/sync", SyncHandler),
    ]
