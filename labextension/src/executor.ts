/**
 * Run, Run All and Shift-Enter on a notebook Anode serves push
 * `v1.ExecutionRequested` into its log as the person who clicked, after
 * every edit made before the click. JupyterLab asks for one cell at a time,
 * synchronously, for a whole Run All: the cells asked for in one turn of the
 * event loop go in one push, so they are all pending at once. A cell's promise
 * resolves when the log says the execution ended; `[*]` and the outputs come
 * from the document, which the server writes from the runtime's events.
 */
import { INotebookCellExecutor, runCell as defaultRunCell } from '@jupyterlab/notebook';

import { newId } from './connection';
import { KERNEL } from './document';
import { AnodeContentProvider } from './provider';

interface IQueued {
  options: INotebookCellExecutor.IRunCellOptions;
  executionId: string;
  resolve: (ok: boolean) => void;
}

export class AnodeCellExecutor implements INotebookCellExecutor {
  constructor(private readonly provider: AnodeContentProvider) {}

  runCell(options: INotebookCellExecutor.IRunCellOptions): Promise<boolean> {
    const path = options.sessionContext?.path ?? '';
    const binding = this.provider.bindingNow(path);
    // A notebook switched to another kernel runs on that kernel, as JupyterLab does.
    const kernel = options.sessionContext?.session?.kernel?.name;
    const foreign = !!kernel && kernel !== KERNEL;
    if (options.cell.model.type !== 'code' || !binding || !binding.notebookId || foreign) {
      return defaultRunCell(options);
    }
    return new Promise<boolean>(resolve => {
      const batch = this.batches.get(path) ?? [];
      if (!batch.length) {
        this.batches.set(path, batch);
        queueMicrotask(() => void this.flush(path));
      }
      batch.push({ options, executionId: newId(), resolve });
      options.onCellExecutionScheduled({ cell: options.cell });
    });
  }

  private async flush(path: string): Promise<void> {
    const batch = this.batches.get(path) ?? [];
    this.batches.delete(path);
    const binding = await this.provider.binding(path);
    if (!binding) {
      for (const q of batch) {
        q.resolve(await defaultRunCell(q.options));
      }
      return;
    }
    const group = newId();
    const events = batch.map(q => ({
      name: 'v1.ExecutionRequested' as const,
      args: {
        execution_id: q.executionId,
        cell_id: q.options.cell.model.sharedModel.getId(),
        code: q.options.cell.model.sharedModel.getSource(),
        batch: group
      }
    }));
    try {
      await binding.push(events);
    } catch (err) {
      for (const q of batch) {
        q.options.onCellExecuted({ cell: q.options.cell, success: false });
        q.resolve(false);
      }
      console.warn('Anode: the execution was refused:', (err as Error).message);
      return;
    }
    for (const q of batch) {
      void binding.finished(q.executionId).then(end => {
        const args = end.args as { status?: string };
        const ok = end.name === 'v1.ExecutionCompleted' && args.status === 'ok';
        q.options.onCellExecuted({ cell: q.options.cell, success: ok });
        q.resolve(ok);
      });
    }
  }

  private batches = new Map<string, IQueued[]>();
}
