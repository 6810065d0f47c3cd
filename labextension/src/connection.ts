/**
 * The sync websocket of one notebook (DESIGN.md, "Websocket"): pull from a
 * cursor, then live; pushes keep their ids across reconnects, so a push that
 * raced a dropped connection is sent again and the server keeps one copy.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { Catalogue, Envelope, EventName } from './generated/anode';

export type Status = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface IPushEvent<N extends EventName = EventName> {
  name: N;
  args: Catalogue[N];
}

interface IWaiting {
  events: { id: string; name: string; args: unknown }[];
  resolve: (seqs: number[]) => void;
  reject: (err: Error) => void;
}

export interface IConnectionOptions {
  /** Pull from this seq (a client that loaded a snapshot at that head). */
  after?: number;
  /** Messages other than the protocol's own (the server's `saved`, say). */
  onMessage?: (msg: { type: string; [key: string]: unknown }) => void;
}

export class LogConnection {
  constructor(
    readonly notebookId: string,
    private readonly onEvents: (events: Envelope[], head: number) => void,
    private readonly onStatus: (status: Status, detail?: string) => void,
    private readonly settings = ServerConnection.makeSettings(),
    private readonly options: IConnectionOptions = {}
  ) {
    this.clientId = `lab-${newId()}`;
    this._cursor = options.after ?? 0;
    this.open();
  }

  readonly clientId: string;
  /** The seq of the last event delivered. */
  get cursor(): number {
    return this._cursor;
  }

  push(events: IPushEvent[]): Promise<number[]> {
    const req = ++this._req;
    const withIds = events.map(e => ({ id: newId(), name: e.name, args: e.args }));
    return new Promise((resolve, reject) => {
      this._waiting.set(req, { events: withIds, resolve, reject });
      this.sendPush(req);
    });
  }

  dispose(): void {
    this._disposed = true;
    window.clearTimeout(this._timer);
    this._ws?.close();
    for (const w of this._waiting.values()) {
      w.reject(new Error('connection closed'));
    }
    this._waiting.clear();
    this.onStatus('closed');
  }

  private url(): string {
    const { wsUrl, token, appendToken } = this.settings;
    let url = URLExt.join(wsUrl, 'anode/api/notebooks', this.notebookId, 'sync');
    url += `?client_id=${encodeURIComponent(this.clientId)}`;
    if (appendToken && token) {
      url += `&token=${encodeURIComponent(token)}`;
    }
    return url;
  }

  private open(): void {
    if (this._disposed) {
      return;
    }
    this.onStatus(this._everOpen ? 'reconnecting' : 'connecting');
    const ws = new WebSocket(this.url());
    this._ws = ws;
    ws.onopen = () => {
      this._everOpen = true;
      this._backoff = 250;
      ws.send(JSON.stringify({ type: 'pull', after: this._cursor }));
      for (const req of this._waiting.keys()) {
        this.sendPush(req);
      }
      this.onStatus('live');
    };
    ws.onmessage = msg => this.receive(String(msg.data));
    ws.onclose = ev => {
      if (this._ws !== ws || this._disposed) {
        return;
      }
      this._ws = null;
      if (ev.code === 4004 || ev.code === 4003) {
        this.onStatus('closed', ev.reason || `refused (${ev.code})`);
        return;
      }
      this.onStatus('reconnecting', ev.reason || undefined);
      this._timer = window.setTimeout(() => this.open(), this._backoff);
      this._backoff = Math.min(this._backoff * 2, 5000);
    };
  }

  private sendPush(req: number): void {
    const w = this._waiting.get(req);
    if (w && this._ws && this._ws.readyState === WebSocket.OPEN) {
      this._ws.send(JSON.stringify({ type: 'push', req, events: w.events }));
    }
  }

  private receive(raw: string): void {
    let msg: any;
    try {
      msg = JSON.parse(raw);
    } catch {
      return;
    }
    if (msg.type === 'events') {
      const fresh = (msg.events as Envelope[]).filter(e => e.seq > this._cursor);
      if (fresh.length) {
        this._cursor = fresh[fresh.length - 1].seq;
      }
      this.onEvents(fresh, Math.max(Number(msg.head ?? 0), this._cursor));
    } else if (msg.type === 'push_ok' || msg.type === 'push_refused') {
      const w = this._waiting.get(msg.req);
      if (!w) {
        return;
      }
      if (msg.type === 'push_refused' && msg.status === 429) {
        window.setTimeout(() => this.sendPush(msg.req), 500);
        return;
      }
      this._waiting.delete(msg.req);
      if (msg.type === 'push_ok') {
        w.resolve(msg.seqs);
      } else {
        w.reject(new PushRefused(String(msg.reason), Number(msg.status ?? 400)));
      }
    } else if (msg.type === 'error') {
      this.onStatus('live', String(msg.reason ?? 'server error'));
    } else if (typeof msg.type === 'string') {
      this.options.onMessage?.(msg);
    }
  }

  private _ws: WebSocket | null = null;
  private _cursor = 0;
  private _req = 0;
  private _backoff = 250;
  private _timer = 0;
  private _everOpen = false;
  private _disposed = false;
  private _waiting = new Map<number, IWaiting>();
}

/** A push the server refused: nothing of it was appended. */
export class PushRefused extends Error {
  constructor(
    reason: string,
    readonly status: number
  ) {
    super(reason);
  }
}

/** 128 random bits, base64url (22 characters: every event's id is stored and indexed). */
export function newId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const b64 = btoa(String.fromCharCode(...bytes));
  return b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** A REST call under the server's base URL; the JSON answer or a thrown reason. */
export async function requestJSON<T>(
  path: string,
  init: RequestInit = {},
  settings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, path);
  const resp = await ServerConnection.makeRequest(url, init, settings);
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    throw new Error(body.reason || body.message || `${resp.status} ${resp.statusText}`);
  }
  return body as T;
}
