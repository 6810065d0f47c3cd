/**
 * The "Anode" sidebar: the queue, the runtimes, input requests and the
 * timeline of the current notebook's log. Events are folded as they arrive
 * and painted at most once per animation frame; the queue draws only the rows
 * in view, so a long history or a fast stream never blocks the page.
 *
 * Code, prompts, user names and reasons are what collaborators write: the DOM
 * is built with Lumino's virtual DOM (`h`), whose text is always text, never
 * with markup from strings.
 */
import { VirtualDOM, VirtualElement, h } from '@lumino/virtualdom';
import { Widget } from '@lumino/widgets';

import { IPushEvent, LogConnection, Status, requestJSON } from './connection';
import { ExecutionView, RuntimeView, StateView } from './generated/anode';
import { QueueModel } from './model';

const ROW_HEIGHT = 42;
const OVERSCAN = 8;

export class AnodePanel extends Widget {
  constructor() {
    super();
    this.id = 'anode-panel';
    this.title.label = 'Anode';
    this.title.caption = 'Anode: execution queue, runtimes and history';
    this.addClass('anode-panel');
    for (const part of [
      h.div(
        { className: 'anode-header' },
        h.span({ className: 'anode-document' }, 'No notebook'),
        h.span({ className: 'anode-status', dataset: { status: 'closed' } })
      ),
      h.div({ className: 'anode-error', hidden: '' }),
      h.h3('Runtimes'),
      h.div({ className: 'anode-runtimes' }),
      h.div({ className: 'anode-inputs' }),
      h.h3('Queue ', h.span({ className: 'anode-counts' })),
      h.div({ className: 'anode-queue' }, h.div({ className: 'anode-queue-spacer' })),
      h.h3('Timeline'),
      h.div(
        { className: 'anode-timeline' },
        h.input({
          type: 'range',
          className: 'anode-timeline-slider',
          min: '0',
          max: '0',
          value: '0',
          disabled: ''
        }),
        h.div({ className: 'anode-timeline-event' }),
        h.button({ className: 'anode-timeline-live jp-mod-styled', hidden: '' }, 'Back to live'),
        h.div({ className: 'anode-timeline-cells' })
      )
    ]) {
      this.node.appendChild(VirtualDOM.realize(part));
    }
    this.queueNode = this.find('.anode-queue');
    this.spacer = this.find('.anode-queue-spacer');
    this.slider = this.find('.anode-timeline-slider') as HTMLInputElement;
    // Layout is read only when it changes (scroll, resize), never while painting:
    // a read after the notebook's own DOM writes would force a synchronous layout.
    this.queueNode.addEventListener('scroll', () => {
      this.queueTop = this.queueNode.scrollTop;
      this.schedule();
    });
    new ResizeObserver(entries => {
      this.queueHeight = entries[0].contentRect.height || this.queueHeight;
      this.schedule();
    }).observe(this.queueNode);
    this.queueNode.addEventListener('click', ev => this.onQueueClick(ev));
    this.find('.anode-runtimes').addEventListener('click', ev => this.onRuntimeClick(ev));
    this.find('.anode-inputs').addEventListener('submit', ev => this.onInputSubmit(ev));
    this.slider.addEventListener('input', () => this.onSlide());
    this.find('.anode-timeline-live').addEventListener('click', () => this.followLive());
  }

  /** Follow the log of the document at `path` (null: no notebook is current). */
  async setDocument(path: string | null): Promise<void> {
    if (path === this.path) {
      return;
    }
    this.path = path;
    this.conn?.dispose();
    this.conn = null;
    this.notebookId = null;
    this.cursor = 0;
    this.model = new QueueModel();
    this.paintedVersion = -1;
    this.paintedHead = -1;
    this.following = true;
    this.find('.anode-document').textContent = path ?? 'No notebook';
    this.showError('');
    this.schedule();
    if (path === null) {
      return;
    }
    try {
      const doc = await requestJSON<{ id: string }>(
        `anode/api/documents?path=${encodeURIComponent(path)}`
      );
      if (this.path !== path) {
        return;
      }
      this.node.dataset.notebookId = doc.id;
      this.notebookId = doc.id;
      this.connect(0);
    } catch (err) {
      this.showError(`Cannot follow ${path}: ${(err as Error).message}`);
    }
  }

  /** Follow the log live from `after` (only while the panel is shown). */
  private connect(after: number): void {
    if (!this.isVisible || this.conn !== null || this.notebookId === null) {
      return;
    }
    this.conn = new LogConnection(
      this.notebookId,
      (events, head) => {
        for (const e of events) {
          this.model.apply(e);
        }
        this.model.head = Math.max(this.model.head, head);
        this.schedule();
      },
      (status, detail) => this.setStatus(status, detail),
      undefined,
      { after }
    );
  }

  protected onAfterShow(): void {
    this.paintedVersion = -1;
    this.connect(this.cursor);
    this.schedule();
  }

  /** A hidden panel does not follow: every keystroke would cost the server a send. */
  protected onAfterHide(): void {
    this.cursor = this.conn?.cursor ?? this.cursor;
    this.conn?.dispose();
    this.conn = null;
  }

  dispose(): void {
    this.conn?.dispose();
    super.dispose();
  }

  // -- painting -------------------------------------------------------------
  private schedule(): void {
    if (this.frame === 0) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.paint();
      });
    }
  }

  private paint(): void {
    if (!this.isVisible) {
      return; // painted again when shown
    }
    const scrolled = this.queueTop !== this.paintedScroll;
    if (this.model.version !== this.paintedVersion || scrolled) {
      this.paintedVersion = this.model.version;
      this.paintedScroll = this.queueTop;
      this.paintRuntimes();
      this.paintInputs();
      this.paintQueue();
    }
    this.paintTimeline();
  }

  private paintRuntimes(): void {
    const box = this.find('.anode-runtimes');
    const rts = Array.from(this.model.runtimes.values()).sort(
      (a, b) => Number(a.state !== 'live') - Number(b.state !== 'live') || b.started_at - a.started_at
    );
    const rows = rts.slice(0, 20).map(rt => runtimeRow(rt));
    VirtualDOM.render(rows.length ? rows : h.div({ className: 'anode-empty' }, 'No runtime yet'), box);
  }

  private paintInputs(): void {
    const box = this.find('.anode-inputs');
    const open = this.model.pendingInputs();
    const have = new Set(Array.from(box.querySelectorAll('form')).map(f => f.dataset.executionId));
    const want = new Set(open.map(i => i.execution_id));
    for (const form of Array.from(box.querySelectorAll('form'))) {
      if (!want.has(form.dataset.executionId ?? "")) {
        form.remove(); // keep forms being typed into untouched
      }
    }
    for (const req of open) {
      if (have.has(req.execution_id)) {
        continue;
      }
      const form = document.createElement('form');
      form.className = 'anode-input';
      form.dataset.executionId = req.execution_id;
      form.appendChild(
        VirtualDOM.realize(h.label(req.prompt || 'input()'))
      );
      form.appendChild(
        VirtualDOM.realize(
          h.input({ name: 'value', type: req.password ? 'password' : 'text', autocomplete: 'off' })
        )
      );
      form.appendChild(
        VirtualDOM.realize(h.button({ type: 'submit', className: 'jp-mod-styled' }, 'Send'))
      );
      box.appendChild(form);
    }
  }

  private paintQueue(): void {
    const rows = this.model.newestFirst();
    const counts: Record<string, number> = {};
    for (const r of rows) {
      counts[r.state] = (counts[r.state] ?? 0) + 1;
    }
    this.find('.anode-counts').textContent = Object.entries(counts)
      .map(([k, v]) => `${v} ${k}`)
      .join(' · ');
    this.spacer.style.height = `${rows.length * ROW_HEIGHT}px`;
    const top = this.queueTop;
    const height = this.queueHeight;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    const shown = rows
      .slice(first, last)
      .map((ex, i) => executionRow(ex, (first + i) * ROW_HEIGHT));
    VirtualDOM.render(shown, this.spacer);
  }

  private paintTimeline(): void {
    const head = this.model.head;
    if (head === this.paintedHead) {
      return;
    }
    this.paintedHead = head;
    this.slider.max = String(head);
    this.slider.min = head > 0 ? '1' : '0';
    this.slider.disabled = head === 0;
    if (this.following) {
      this.slider.value = String(head);
      this.find('.anode-timeline-event').textContent = head
        ? `Live at event ${head}`
        : 'No events yet';
    }
  }

  // -- the timeline ---------------------------------------------------------
  private onSlide(): void {
    const seq = Number(this.slider.value);
    this.following = seq >= this.model.head;
    this.find('.anode-timeline-live').hidden = this.following;
    if (this.following) {
      this.followLive();
      return;
    }
    window.clearTimeout(this.slideTimer);
    this.slideTimer = window.setTimeout(() => void this.showAt(seq), 80);
  }

  private followLive(): void {
    this.following = true;
    this.paintedHead = -1;
    this.find('.anode-timeline-live').hidden = true;
    VirtualDOM.render(null, this.find('.anode-timeline-cells'));
    this.node.dataset.timelineAt = '';
    this.schedule();
  }

  private async showAt(seq: number): Promise<void> {
    const id = this.notebookId;
    if (!id) {
      return;
    }
    const line = this.model.events[seq - 1];
    const named = line
      ? `#${line.seq} ${line.name.replace('v1.', '')} by ${line.user} · ${time(line.at)}` +
        (line.summary ? ` · ${line.summary}` : '')
      : `#${seq}`;
    this.find('.anode-timeline-event').textContent = named;
    try {
      const state = await requestJSON<StateView>(`anode/api/notebooks/${id}?at=${seq}`);
      if (this.following || Number(this.slider.value) !== seq) {
        return;
      }
      this.node.dataset.timelineAt = String(seq);
      const cells = state.cells.map(c =>
        h.div(
          { className: 'anode-timeline-cell', dataset: { 'cell-id': c.id }, key: c.id },
          h.span(
            { className: 'anode-prompt' },
            c.cell_type === 'code' ? `[${c.execution_count ?? ' '}]` : c.cell_type
          ),
          h.pre({ className: 'anode-timeline-source' }, c.source)
        )
      );
      VirtualDOM.render(
        cells.length ? cells : h.div({ className: 'anode-empty' }, 'No cells'),
        this.find('.anode-timeline-cells')
      );
    } catch (err) {
      this.showError(`Cannot show event ${seq}: ${(err as Error).message}`);
    }
  }

  // -- actions: each is one event pushed to the log ---------------------------
  private onQueueClick(ev: Event): void {
    const button = (ev.target as HTMLElement).closest('button[data-action="cancel"]');
    const row = button?.closest<HTMLElement>('[data-execution-id]');
    if (row) {
      this.send({ name: 'v1.ExecutionCancelled', args: { execution_id: row.dataset.executionId! } });
    }
  }

  private onRuntimeClick(ev: Event): void {
    const button = (ev.target as HTMLElement).closest<HTMLElement>('button[data-action]');
    const row = button?.closest<HTMLElement>('[data-session-id]');
    if (!button || !row) {
      return;
    }
    const session_id = row.dataset.sessionId!;
    if (button.dataset.action === 'interrupt') {
      this.send({ name: 'v1.InterruptRequested', args: { session_id } });
    } else if (button.dataset.action === 'restart') {
      this.send({ name: 'v1.RestartRequested', args: { session_id } });
    }
  }

  private onInputSubmit(ev: Event): void {
    ev.preventDefault();
    const form = ev.target as HTMLFormElement;
    const value = (form.elements.namedItem('value') as HTMLInputElement).value;
    const execution_id = form.dataset.executionId!;
    form.querySelector('button')!.disabled = true;
    this.send({ name: 'v1.InputReplied', args: { execution_id, value } });
  }

  private send(event: IPushEvent): void {
    if (!this.conn) {
      return;
    }
    this.showError('');
    this.conn.push([event]).catch(err => this.showError(`${event.name}: ${err.message}`));
  }

  // -- small helpers ------------------------------------------------------------
  private setStatus(status: Status, detail?: string): void {
    const node = this.find('.anode-status');
    node.dataset.status = status;
    node.textContent = status;
    if (detail) {
      this.showError(detail);
    }
  }

  private showError(text: string): void {
    const node = this.find('.anode-error');
    node.textContent = text;
    node.hidden = !text;
  }

  private find(selector: string): HTMLElement {
    return this.node.querySelector(selector) as HTMLElement;
  }

  private path: string | null = null;
  private conn: LogConnection | null = null;
  private notebookId: string | null = null;
  private cursor = 0; // where a hidden panel resumes
  private model = new QueueModel();
  private following = true;
  private frame = 0;
  private paintedVersion = -1;
  private paintedScroll = -1;
  private paintedHead = -1;
  private queueTop = 0;
  private queueHeight = 400;
  private slideTimer = 0;
  private readonly queueNode: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly slider: HTMLInputElement;
}

function executionRow(ex: ExecutionView, top: number): VirtualElement {
  const end = ex.ended_at ?? null;
  const duration =
    ex.started_at !== null && end !== null ? `${((end - ex.started_at) / 1000).toFixed(2)} s` : '';
  const cancel =
    ex.state === 'pending' || ex.state === 'assigned'
      ? h.button(
          { className: 'jp-mod-styled', dataset: { action: 'cancel' }, title: 'Cancel this execution' },
          'Cancel'
        )
      : null;
  const title = [
    ex.code,
    `requested by ${ex.requested_by} at ${time(ex.requested_at)}`,
    ex.started_at !== null ? `started ${time(ex.started_at)}` : '',
    end !== null ? `ended ${time(end)}` : '',
    ex.reason ?? ''
  ]
    .filter(Boolean)
    .join('\n');
  const state = `${ex.state}${ex.status && ex.status !== 'ok' ? ` (${ex.status})` : ''}`;
  return h.div(
    {
      key: ex.id,
      className: 'anode-row',
      style: { top: `${top}px` },
      dataset: { 'execution-id': ex.id, state: ex.state, 'cell-id': ex.cell_id ?? '' },
      title
    },
    h.div(
      { className: 'anode-line' },
      h.span({ className: 'anode-state', dataset: { state: ex.state } }, state),
      h.span({ className: 'anode-code' }, firstLine(ex.code))
    ),
    h.div(
      { className: 'anode-line anode-meta' },
      h.span({ className: 'anode-who' }, ex.requested_by),
      h.span({ className: 'anode-runtime' }, ex.session_id ? ex.session_id.slice(0, 6) : ''),
      h.span({ className: 'anode-time' }, time(ex.requested_at)),
      h.span({ className: 'anode-duration' }, duration),
      cancel
    )
  );
}

function runtimeRow(rt: RuntimeView): VirtualElement {
  const live = rt.state === 'live';
  const status = live ? (rt.holding ? 'busy' : 'idle') : 'ended';
  return h.div(
    {
      key: rt.session_id,
      className: 'anode-runtime-row',
      dataset: { 'session-id': rt.session_id, state: status }
    },
    h.span({ className: 'anode-state', dataset: { state: status } }, status),
    h.span({ className: 'anode-runtime-id' }, rt.session_id.slice(0, 6)),
    h.span({ className: 'anode-who' }, rt.user),
    live
      ? h.button({ className: 'jp-mod-styled', dataset: { action: 'interrupt' } }, 'Interrupt')
      : null,
    live ? h.button({ className: 'jp-mod-styled', dataset: { action: 'restart' } }, 'Restart') : null,
    live
      ? null
      : h.div(
          { className: 'anode-runtime-reason' },
          `Ended ${time(rt.ended_at ?? 0)}: ${rt.reason ?? ''}`
        )
  );
}

function firstLine(code: string): string {
  const line = code.split('\n', 1)[0];
  return line.length > 60 ? `${line.slice(0, 60)}…` : line;
}

// One formatter: toLocaleTimeString builds a new one per call, which showed
// as most of the queue's paint time while cells stream.
const TIME = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit'
});

function time(ms: number): string {
  return TIME.format(ms);
}
