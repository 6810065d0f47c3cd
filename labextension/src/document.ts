/**
 * One notebook widget's shared model bound to its log (DESIGN.md, "The notebook
 * document"). The model starts from the server's document (one update at a
 * head), then applies the update every document event carries, in seq order,
 * over the sync websocket. What this tab changes goes back as
 * `v1.DocumentUpdated` pushes on the same socket, one at a time (edits made
 * while one is out are merged into the next), so the server reads them, and
 * any execution pushed after them, in the order they were made.
 */
import { YNotebook } from '@jupyter/ydoc';
import { ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import * as Y from 'yjs';

import { IPushEvent, LogConnection, PushRefused, Status, requestJSON } from './connection';
import { Envelope } from './generated/anode';

/** The origin of updates that came from the log (never pushed back). */
export const REMOTE = Symbol('anode-remote');
/** The kernel whose notebooks Anode serves (anode_ext.kernel.KERNEL_NAME). */
export const KERNEL = 'anode-pyodide';
/** ipywidgets' comm target. */
const WIDGET_TARGET = 'jupyter.widget';
const FINAL = new Set(['v1.ExecutionCompleted', 'v1.ExecutionFailed', 'v1.ExecutionCancelled']);

export interface IInputChange {
  executionId: string;
  /** The cell it runs in, when it waits; null once settled. */
  cellId: string | null;
  prompt: string;
  password: boolean;
}

export interface ISaved {
  path: string;
  last_modified: string;
  hash?: string | null;
  hash_algorithm?: string | null;
  /** The file holds the log up to this seq. */
  head: number;
}

interface IDocumentSnapshot {
  head: number;
  update: string;
  writable: boolean;
  /** `input()` calls waiting at that head. */
  inputs: { execution_id: string; cell_id: string | null; prompt: string; password: boolean }[];
  /** Who this tab is to the server. */
  user?: string;
  /** Who asked for each cell's latest execution. */
  ran_by?: Record<string, string>;
}

type Job = { kind: 'doc' } | { kind: 'events'; events: IPushEvent[]; done: (e?: Error) => void };

export class NotebookBinding {
  constructor(
    readonly path: string,
    readonly model: YNotebook,
    private readonly settings = ServerConnection.makeSettings()
  ) {
    this.ready = this.start();
    model.ydoc.on('update', this.onLocalUpdate);
  }

  /** Resolves true once the model holds the log's document; false: Anode does not serve it. */
  readonly ready: Promise<boolean>;
  notebookId = '';
  writable = false;
  /**
   * Resolves once this tab's widget manager has the widgets with these comm ids
   * (set by the binding UI for a tab with a kernel). A batch from the log that
   * opens widgets waits for it: the document shows the widget's view, the kernel
   * connection brings its model, and a view drawn before its model says "model
   * not found" for good.
   */
  commGate: ((commIds: string[]) => Promise<void>) | null = null;

  /** The server wrote the file from the log. */
  get saved(): ISignal<this, ISaved> {
    return this._saved;
  }

  /** The file on disk holds every change made in this tab (the tab is not "unsaved"). */
  get clean(): ISignal<this, void> {
    return this._clean;
  }

  /** An `input()` waits in a cell of this notebook, or no longer does (answered, ended). */
  get input(): ISignal<this, IInputChange> {
    return this._input;
  }

  /** Who asked for a cell's latest execution changed (its cell id). */
  get ranByChanged(): ISignal<this, string> {
    return this._ranByChanged;
  }

  /** Who asked for the cell's latest execution, if it ran; `user` is this tab's person. */
  ranBy(cellId: string): string | undefined {
    return this._ranBy.get(cellId);
  }
  user = '';

  /** This tab's change was refused: the model holds what the log does not. */
  get refused(): ISignal<this, string> {
    return this._refused;
  }

  get status(): Status {
    return this._status;
  }

  /** Push events after every edit made so far (Run: the code is the source after the last keystroke). */
  push(events: IPushEvent[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.jobs.push({ kind: 'events', events, done: err => (err ? reject(err) : resolve()) });
      void this.pump();
    });
  }

  /** Resolves with the execution's final event name and args once the log has it. */
  finished(executionId: string): Promise<Envelope> {
    const done = this.ended.get(executionId);
    if (done) {
      return Promise.resolve(done);
    }
    return new Promise(resolve => this.waiting.set(executionId, resolve));
  }

  dispose(): void {
    this.disposed = true;
    this.model.ydoc.off('update', this.onLocalUpdate);
    this.conn?.dispose();
  }

  private async start(): Promise<boolean> {
    const where = await requestJSON<{ id: string; kernel: string | null }>(
      `anode/api/documents?path=${encodeURIComponent(this.path)}`,
      {},
      this.settings
    );
    if (where.kernel && where.kernel !== KERNEL) {
      this.dispose();
      return false; // a notebook of another kernel: JupyterLab's own document
    }
    this.notebookId = where.id;
    const snap = await requestJSON<IDocumentSnapshot>(
      `anode/api/notebooks/${where.id}/document`,
      {},
      this.settings
    );
    this.writable = snap.writable;
    this.user = snap.user ?? '';
    for (const [cell, user] of Object.entries(snap.ran_by ?? {})) {
      this._ranBy.set(cell, user);
    }
    Y.applyUpdate(this.model.ydoc, fromBase64(snap.update), REMOTE);
    for (const i of snap.inputs ?? []) {
      if (i.cell_id) {
        this.cells.set(i.execution_id, i.cell_id);
      }
      this.ask(i.execution_id, i.prompt, !!i.password);
    }
    this.conn = new LogConnection(
      where.id,
      events => this.onEvents(events),
      status => (this._status = status),
      this.settings,
      {
        after: snap.head,
        onMessage: msg => {
          if (msg.type === 'saved') {
            const saved = msg as unknown as ISaved;
            this._saved.emit(saved);
            const idle = !this.busy && !this.jobs.length && !this.outbox.length;
            const held = Math.max(this.pushedSeq, this.conn?.cursor ?? 0);
            if (idle && saved.head >= held) {
              this._clean.emit();
            }
          }
        }
      }
    );
    return !this.disposed;
  }

  private onEvents(events: Envelope[]): void {
    const widgets = this.commGate ? widgetsOpened(events) : [];
    if (!this.holding && !widgets.length) {
      this.apply(events);
      return;
    }
    // Held: this batch waits for its widgets, and every later batch behind it.
    const gate = this.commGate;
    const held: Promise<void> = (this.holding ?? Promise.resolve()).then(async () => {
      if (widgets.length && gate) {
        await gate(widgets).catch(() => undefined);
      }
      if (!this.disposed) {
        this.apply(events);
      }
    });
    this.holding = held;
    void held.then(() => {
      if (this.holding === held) {
        this.holding = null;
      }
    });
  }

  private apply(events: Envelope[]): void {
    // Who ran a cell first: a tab that trusted its outputs (its own person's
    // run) stops before someone else's outputs arrive in it.
    for (const e of events) {
      if (e.name === 'v1.ExecutionRequested' && e.args.cell_id) {
        if (this._ranBy.get(e.args.cell_id) !== e.user) {
          this._ranBy.set(e.args.cell_id, e.user);
          this._ranByChanged.emit(e.args.cell_id);
        }
      }
    }
    // One transaction for what arrived together: JupyterLab builds its cell
    // models once, from the end state (a collaborator's `trusted`, which the
    // server removes in the update right after it, never reaches them).
    Y.transact(
      this.model.ydoc,
      () => {
        for (const e of events) {
          if (e.name === 'v1.DocumentUpdated' || e.name === 'v1.CellSourceEdited') {
            Y.applyUpdate(this.model.ydoc, fromBase64(e.args.update), REMOTE);
          }
        }
      },
      REMOTE
    );
    for (const e of events) {
      if (e.name === 'v1.ExecutionRequested' && e.args.cell_id) {
        this.cells.set(e.args.execution_id, e.args.cell_id);

      } else if (e.name === 'v1.InputRequested') {
        const { prompt, password } = e.args;
        this.ask(e.args.execution_id, prompt ?? '', !!password);
      } else if (e.name === 'v1.InputReplied') {
        this.settle(e.args.execution_id);
      }
      if (FINAL.has(e.name)) {
        const id = (e.args as { execution_id: string }).execution_id;
        this.settle(id);
        this.ended.set(id, e);
        this.waiting.get(id)?.(e);
        this.waiting.delete(id);
      }
    }
  }

  /** The `input()` calls waiting now, in cells of this notebook. */
  get waitingInputs(): IInputChange[] {
    return Array.from(this.asking.values()).filter(i => i.cellId !== null);
  }

  private ask(executionId: string, prompt: string, password: boolean): void {
    const change = { executionId, cellId: this.cells.get(executionId) ?? null, prompt, password };
    this.asking.set(executionId, change);
    if (change.cellId !== null) {
      this._input.emit(change);
    }
  }

  /** An input request was answered (here or anywhere) or its execution ended. */
  private settle(executionId: string): void {
    if (this.asking.delete(executionId)) {
      this._input.emit({ executionId, cellId: null, prompt: '', password: false });
    }
  }

  private onLocalUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === REMOTE || !this.conn || !this.writable) {
      return; // a reader's tab changes nothing in the log (the server would refuse it)
    }
    this.outbox.push(update);
    if (!this.jobs.some(j => j.kind === 'doc')) {
      this.jobs.push({ kind: 'doc' });
    }
    void this.pump();
  };

  /** One push on the wire at a time, in the order they were asked for. */
  private async pump(): Promise<void> {
    if (this.busy || !this.conn) {
      return;
    }
    this.busy = true;
    try {
      while (this.jobs.length && this.conn && !this.disposed) {
        const job = this.jobs.shift()!;
        if (job.kind === 'events') {
          try {
            await this.send(job.events);
            job.done();
          } catch (err) {
            job.done(err as Error);
          }
          continue;
        }
        if (!this.outbox.length) {
          continue;
        }
        const update = Y.mergeUpdates(this.outbox.splice(0));
        try {
          await this.send([
            { name: 'v1.DocumentUpdated', args: { update: toBase64(update) } }
          ]);
        } catch (err) {
          if (err instanceof PushRefused) {
            this._refused.emit(err.message);
          }
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /** One push on the wire, remembering the last seq this tab wrote. */
  private async send(events: IPushEvent[]): Promise<void> {
    const seqs = await this.conn!.push(events);
    this.pushedSeq = Math.max(this.pushedSeq, ...seqs);
  }

  private conn: LogConnection | null = null;
  private holding: Promise<void> | null = null; // batches waiting for their widgets
  private disposed = false;
  private busy = false;
  private jobs: Job[] = [];
  private outbox: Uint8Array[] = [];
  private ended = new Map<string, Envelope>();
  private waiting = new Map<string, (e: Envelope) => void>();
  private _status: Status = 'connecting';
  private _saved = new Signal<this, ISaved>(this);
  private _clean = new Signal<this, void>(this);
  private pushedSeq = 0; // the last seq of this tab's pushes
  private _refused = new Signal<this, string>(this);
  private _input = new Signal<this, IInputChange>(this);
  private _ranBy = new Map<string, string>(); // cell -> who asked for its latest execution
  private _ranByChanged = new Signal<this, string>(this);
  private cells = new Map<string, string>(); // execution -> cell
  private asking = new Map<string, IInputChange>(); // executions whose input() waits
}

/** The widgets a batch opens (ipywidgets' comms Python made). */
function widgetsOpened(events: Envelope[]): string[] {
  const ids: string[] = [];
  for (const e of events) {
    if (
      e.name === 'v1.CommOpened' &&
      e.args.origin === 'runtime' &&
      e.args.target_name === WIDGET_TARGET
    ) {
      ids.push(e.args.comm_id);
    }
  }
  return ids;
}

export function fromBase64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) {
    out[i] = bin.charCodeAt(i);
  }
  return out;
}

export function toBase64(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}
