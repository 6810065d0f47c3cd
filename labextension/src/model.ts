/**
 * The panel's tables, folded from the log exactly as anode_ext/log/materialize.py
 * folds the queue, runtimes and input requests (the rows are the State view's
 * generated types). Outputs and sources are not kept: the timeline asks the
 * server for the state at a seq instead.
 */
import { Envelope, ExecutionView, InputView, RuntimeView } from './generated/anode';

/** Events that change none of the panel's tables (most of a streaming cell's traffic). */
const QUIET = new Set<string>([
  'v1.OutputAppended',
  'v1.DisplayUpdated',
  'v1.OutputsCleared',
  'v1.CellSourceEdited',
  'v1.CellSourceChanged',
  'v1.CellMetadataSet',
  'v1.NotebookMetadataSet'
]);

/** What the timeline names: one line per event, no args. */
export interface IEventLine {
  seq: number;
  name: string;
  user: string;
  at: number;
  summary: string;
}

export class QueueModel {
  /** Executions in request order. */
  readonly executions = new Map<string, ExecutionView>();
  readonly runtimes = new Map<string, RuntimeView>();
  readonly inputs = new Map<string, InputView>();
  /** The run (Run All) each stop-on-error execution belongs to. */
  private readonly batches = new Map<string, string>();
  readonly events: IEventLine[] = [];
  head = 0;

  /** Executions newest first (what the queue list shows). */
  newestFirst(): ExecutionView[] {
    return Array.from(this.executions.values()).reverse();
  }

  pendingInputs(): InputView[] {
    return Array.from(this.inputs.values()).filter(i => i.state === 'pending');
  }

  /** Bumped by every event that changes what the queue, runtimes or inputs show. */
  version = 0;

  apply(env: Envelope): void {
    this.head = Math.max(this.head, env.seq);
    if (!QUIET.has(env.name)) {
      this.version++;
    }
    this.events.push({
      seq: env.seq,
      name: env.name,
      user: env.user,
      at: env.at,
      summary: summarize(env)
    });
    switch (env.name) {
      case 'v1.RuntimeSessionStarted':
        this.runtimes.set(env.args.session_id, {
          session_id: env.args.session_id,
          state: 'live',
          user: env.user,
          started_at: env.at,
          ended_at: null,
          reason: null,
          holding: null,
          info: env.args.info ?? {}
        });
        break;
      case 'v1.RuntimeSessionEnded': {
        const rt = this.runtimes.get(env.args.session_id);
        if (!rt) {
          break;
        }
        rt.state = 'ended';
        rt.reason = env.args.reason;
        rt.ended_at = env.at;
        const ex = rt.holding ? this.executions.get(rt.holding) : undefined;
        if (ex?.state === 'executing') {
          this.finish(ex, 'failed', env.at, `runtime session ended: ${env.args.reason}`);
        } else if (ex?.state === 'assigned') {
          ex.state = 'pending';
          ex.session_id = null;
        }
        rt.holding = null;
        break;
      }
      case 'v1.ExecutionRequested':
        if (env.args.batch && env.args.stop_on_error !== false) {
          this.batches.set(env.args.execution_id, env.args.batch);
        }
        this.executions.set(env.args.execution_id, {
          id: env.args.execution_id,
          cell_id: env.args.cell_id,
          code: env.args.code,
          state: 'pending',
          status: null,
          reason: null,
          requested_by: env.user,
          session_id: null,
          execution_count: null,
          requested_at: env.at,
          started_at: null,
          ended_at: null
        });
        break;
      case 'v1.ExecutionAssigned': {
        const ex = this.executions.get(env.args.execution_id);
        const rt = this.runtimes.get(env.args.session_id);
        if (ex) {
          ex.state = 'assigned';
          ex.session_id = env.args.session_id;
        }
        if (rt) {
          rt.holding = env.args.execution_id;
        }
        break;
      }
      case 'v1.ExecutionStarted': {
        const ex = this.executions.get(env.args.execution_id);
        if (ex) {
          ex.state = 'executing';
          ex.execution_count = env.args.execution_count;
          ex.started_at = env.at;
        }
        break;
      }
      case 'v1.ExecutionCompleted': {
        const ex = this.executions.get(env.args.execution_id);
        if (ex) {
          this.finish(ex, 'completed', env.at, null, env.args.status);
          const batch = this.batches.get(ex.id);
          if (env.args.status === 'error' && batch) {
            // Stop on error is a queue rule (materialize.py): the rest of the run is cancelled.
            for (const other of this.executions.values()) {
              if (other.state === 'pending' && this.batches.get(other.id) === batch) {
                const reason = 'cancelled: an earlier cell of the same run failed';
                this.finish(other, 'cancelled', env.at, reason);
              }
            }
          }
        }
        break;
      }
      case 'v1.ExecutionCancelled': {
        const ex = this.executions.get(env.args.execution_id);
        if (ex) {
          this.finish(ex, 'cancelled', env.at, `cancelled by ${env.user}`);
        }
        break;
      }
      case 'v1.ExecutionFailed': {
        const ex = this.executions.get(env.args.execution_id);
        if (ex) {
          this.finish(ex, 'failed', env.at, env.args.reason);
        }
        break;
      }
      case 'v1.InputRequested':
        this.inputs.set(env.args.execution_id, {
          execution_id: env.args.execution_id,
          prompt: env.args.prompt ?? "",
          password: env.args.password ?? false,
          state: 'pending',
          requested_at: env.at,
          replied_by: null
        });
        break;
      case 'v1.InputReplied': {
        const req = this.inputs.get(env.args.execution_id);
        if (req) {
          req.state = 'answered';
          req.replied_by = env.user;
        }
        break;
      }
      default:
        break;
    }
  }

  private finish(
    ex: ExecutionView,
    state: ExecutionView['state'],
    at: number,
    reason: string | null,
    status: ExecutionView['status'] = null
  ): void {
    if (ex.session_id && (ex.state === 'assigned' || ex.state === 'executing')) {
      const rt = this.runtimes.get(ex.session_id);
      if (rt?.holding === ex.id) {
        rt.holding = null;
      }
    }
    const req = this.inputs.get(ex.id);
    if (req?.state === 'pending') {
      req.state = 'abandoned';
    }
    ex.state = state;
    ex.ended_at = at;
    if (reason !== null) {
      ex.reason = reason;
    }
    if (status !== null) {
      ex.status = status;
    }
  }
}

/** A few words on what an event did, for the timeline. */
export function summarize(env: Envelope): string {
  const a = env.args as unknown as Record<string, unknown>;
  const short = (v: unknown) => String(v ?? '').slice(0, 8);
  switch (env.name) {
    case 'v1.CellCreated':
      return `cell ${short(a.cell_id)} (${String(a.cell_type)})`;
    case 'v1.CellSourceChanged':
    case 'v1.CellSourceEdited':
    case 'v1.CellDeleted':
    case 'v1.CellMoved':
    case 'v1.CellTypeChanged':
    case 'v1.CellMetadataSet':
      return `cell ${short(a.cell_id)}`;
    case 'v1.RuntimeSessionStarted':
    case 'v1.RuntimeSessionEnded':
    case 'v1.InterruptRequested':
    case 'v1.RestartRequested':
      return `runtime ${short(a.session_id)}`;
    default:
      return a.execution_id ? `execution ${short(a.execution_id)}` : '';
  }
}
