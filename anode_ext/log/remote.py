"""The remote `LogClient`: a notebook's log on an Anode server, over the sync websocket.

It pulls the log into a replica (the confirmed state), pushes batches and waits
for the server's answer, and survives the connection: when it drops (a server
restart, a network blip, a close for lagging) it reconnects with backoff, pulls
from its last seq, and sends again every push still unanswered, with the same
event ids, so the server's idempotency makes the retry harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from collections.abc import Sequence
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from .catalogue import Event
from .envelope import Envelope
from .errors import AnodeError, Refused
from .rules import Identity
from .state import State
from .sync import GapError, Replica

log = logging.getLogger(__name__)


KEPT_MAX = 200_000  # envelopes a client with keep_events holds at most


class RemoteError(AnodeError):
    """The server will not serve us (wrong token, no such notebook, no rights)."""


class _Lost(Exception):
    """The connection dropped before the server answered."""


class RemoteLog:
    """A `LogClient` for one notebook on a server; `await start()` before use."""

    def __init__(
        self,
        url: str | Sequence[str],
        notebook_id: str,
        *,
        token: str | None = None,
        authorization: str | None = None,
        client_id: str | None = None,
        connect_timeout: float = 30.0,
        answer_timeout: float = 60.0,
        ping_interval: float = 10.0,
        max_backoff: float = 5.0,
        keep_events: bool = False,
    ) -> None:
        self.notebook_id = notebook_id
        # A server token, or a kernel's credential from the extension.
        self.authorization = authorization or (f"token {token}" if token else None)
        # The server decides who we are; the client id is ours to keep, so a
        # reconnect is the same client.
        self.identity = Identity("", client_id or f"remote-{uuid.uuid4().hex}")
        self.connect_timeout = connect_timeout
        self.answer_timeout = answer_timeout
        self.ping_interval = ping_interval
        self.max_backoff = max_backoff
        # Several URLs: replicas of one deployment (the next is tried when one fails).
        urls = [url] if isinstance(url, str) else list(url)
        self._urls = [_sync_url(u, notebook_id, self.identity.client_id) for u in urls]
        self._url = self._urls[0]
        self._replica = Replica(client_id=self.identity.client_id)
        self._conn: WebSocketClientConnection | None = None
        self._connected = asyncio.Event()
        self._synced = asyncio.Event()  # caught up with the head the server announced
        self._server_head = 0
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reqs = itertools.count(1)
        self._waiters: set[asyncio.Future[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._fatal: RemoteError | None = None
        self._closing = False
        self._cookies: dict[str, str] = {}
        self._throttle = 0.05  # seconds to wait after a rate-limit refusal (doubling)
        # Envelopes received after `start()` caught up (for `events`), if asked.
        self.keep_events = keep_events
        self._kept: list[Envelope] = []
        self._kept_from = 0
        self.throttled = 0  # pushes the server refused for the rate (429) and we retried
        self.reconnects = 0

    # -- LogClient ---------------------------------------------------------------
    @property
    def state(self) -> State:
        return self._replica.confirmed

    async def push(self, events: Sequence[tuple[str, Event]]) -> list[int]:
        """Append atomically; returns once our replica holds the new events."""
        body = [
            {"id": event_id, "name": event.name, "args": msgspec.to_builtins(event)}
            for event_id, event in events
        ]
        while True:
            self._check()
            await self._connected.wait()
            self._check()
            conn = self._conn
            if conn is None:
                continue
            req = next(self._reqs)
            answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._answers[req] = answer
            try:
                await conn.write_message(json.dumps({"type": "push", "req": req, "events": body}))
                msg = await asyncio.wait_for(answer, self.answer_timeout)
            except (_Lost, WebSocketClosedError):
                continue  # same ids again: the server appends them at most once
            except TimeoutError:
                log.warning(
                    "no answer to push %d in %.0f s; reconnecting", req, self.answer_timeout
                )
                conn.close()
                continue
            finally:
                self._answers.pop(req, None)
            if msg["type"] == "push_refused":
                status = int(msg.get("status", 400))
                if status == 429:  # rate limited: nothing was appended, so try again later
                    self.throttled += 1
                    await asyncio.sleep(self._throttle)
                    self._throttle = min(self._throttle * 2, self.max_backoff)
                    continue
                raise Refused(int(msg["index"]), str(msg["reason"]), status)
            self._throttle = 0.05
            seqs = [int(s) for s in msg["seqs"]]
            if seqs:
                await self._until(max(seqs))
            return seqs

    def events(self, after: int) -> list[Envelope]:
        """Received events with `seq > after` (kept from `keep_from` on: see `start`)."""
        first = self._kept_from + 1
        return self._kept[max(0, after + 1 - first) :]

    async def wait(self, head: int, timeout: float | None = None) -> bool:
        """Until the replica's head passes `head`; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.state.t.head <= head:
            self._check()
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.add(fut)
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                self._waiters.discard(fut)
                return False
            try:
                await asyncio.wait({fut}, timeout=left)
            finally:
                self._waiters.discard(fut)
        return True

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> RemoteLog:
        """Connect and catch up with the log; raises `RemoteError` if refused."""
        self._runner = asyncio.ensure_future(self._run())
        synced = asyncio.ensure_future(self._synced.wait())
        try:
            done, _ = await asyncio.wait(
                {synced, self._runner},
                timeout=self.connect_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            synced.cancel()
        if self._runner in done:
            self._runner.result()
        self._check()
        if not self._synced.is_set():
            await self.close()
            raise RemoteError(f"could not reach {self._url} in {self.connect_timeout:.0f} s")
        self._kept, self._kept_from = [], self.state.t.head
        return self

    async def close(self) -> None:
        self._closing = True
        if self._conn is not None:
            self._conn.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, RemoteError):
                await self._runner
        self._wake()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- the connection --------------------------------------------------------------
    async def _run(self) -> None:
        backoff = 0.1
        while not self._closing:
            try:
                conn = await self._connect()
            except RemoteError as err:
                self._fatal = err
                self._wake()
                return
            except (OSError, HTTPClientError, asyncio.TimeoutError) as err:
                log.debug("connect to %s failed: %s", self._url, err)
                self._next_url()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = 0.1
            self._conn = conn
            await conn.write_message(json.dumps({"type": "pull", "after": self.state.t.head}))
            self._connected.set()
            try:
                await self._read(conn)
            finally:
                self._conn = None
                self._connected.clear()
                for answer in list(self._answers.values()):
                    if not answer.done():
                        answer.set_exception(_Lost())
            if not self._closing:
                self.reconnects += 1
                log.info("connection to %s lost; reconnecting", self._url)
                self._next_url()

    def _next_url(self) -> None:
        self._url = self._urls[(self._urls.index(self._url) + 1) % len(self._urls)]

    async def _connect(self) -> WebSocketClientConnection:
        headers = {"Authorization": self.authorization} if self.authorization else {}
        if self._cookies:
            # The server's login cookie: a token alone may be a new anonymous
            # user on every connection, and a session belongs to its user.
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self._cookies.items())
        request = HTTPRequest(self._url, headers=headers, connect_timeout=self.connect_timeout)
        try:
            conn = await websocket_connect(
                request,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_interval * 3,
                max_message_size=1 << 30,
            )
        except HTTPClientError as err:
            if err.code in (401, 403, 404):
                why = {401: "not authenticated", 403: "forbidden", 404: "no such notebook"}
                raise RemoteError(f"{self._url}: {why[err.code]} (HTTP {err.code})") from err
            raise
        for header in conn.headers.get_list("Set-Cookie") if conn.headers else []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            self._cookies.update({name: morsel.value for name, morsel in jar.items()})
        return conn

    async def _read(self, conn: WebSocketClientConnection) -> None:
        while True:
            raw = await conn.read_message()
            if raw is None:
                return
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "events":
                try:
                    fresh = self._replica.receive(msg["events"])
                    if self.keep_events:
                        self._keep(fresh)
                except GapError as err:
                    if self.keep_events:
                        self._keep(err.fresh)
                    log.warning("%s; pulling again", err)
                    conn.close()
                    return
                self._server_head = max(self._server_head, int(msg.get("head", 0)))
                if self.state.t.head >= self._server_head:
                    self._synced.set()
                self._wake()
            elif kind in ("push_ok", "push_refused"):
                answer = self._answers.get(msg.get("req"))
                if answer is not None and not answer.done():
                    answer.set_result(msg)
            else:
                log.warning("server says: %s", msg.get("reason", msg))

    def _keep(self, fresh: list[Envelope]) -> None:
        """Keep received envelopes for `events`, the newest KEPT_MAX of them: a
        reader that falls that far behind reads on from the oldest kept."""
        self._kept += fresh
        if len(self._kept) > KEPT_MAX:
            drop = len(self._kept) - KEPT_MAX // 2
            self._kept, self._kept_from = self._kept[drop:], self._kept_from + drop

    async def _until(self, seq: int) -> None:
        while self.state.t.head < seq:
            await self.wait(self.state.t.head)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _check(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._closing:
            raise RemoteError("the client is closed")


def _sync_url(url: str, notebook_id: str, client_id: str) -> str:
    """`http(s)://host/base` → `ws(s)://host/base/anode/api/notebooks/ID/sync?client_id=…`."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not an http(s) or ws(s) URL: {url!r}")
    path = parts.path.rstrip("/") + f"/anode/api/notebooks/{quote(notebook_id)}/sync"
    return urlunsplit((scheme, parts.netloc, path, f"client_id={quote(client_id)}", ""))
