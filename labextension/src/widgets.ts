/**
 * Widgets on a notebook Anode serves. Their models come from the tab's kernel
 * connection (jupyterlab_widgets' manager, over the anode-pyodide kernel, which
 * publishes every comm event of the notebook's log); their views come from the
 * document. So that a view never draws before its model, a log batch that opens
 * widgets is applied to the document once this tab's kernel connection has
 * handled their `comm_open` (JupyterLab signals an iopub message after its comm
 * target, the widget manager, made the model).
 */
import { NotebookPanel } from '@jupyterlab/notebook';
import { KernelMessage } from '@jupyterlab/services';

import { KERNEL, NotebookBinding } from './document';

/** Long enough for a loaded kernel; a view shown after it may say "model not found". */
const GATE_MS = 5000;
const KEEP = 2000; // comm ids remembered per tab

export function gateWidgets(panel: NotebookPanel, binding: NotebookBinding): void {
  const seen = new Set<string>();
  const waiting = new Set<() => void>();
  const session = panel.sessionContext;
  session.iopubMessage.connect((_, msg: KernelMessage.IMessage) => {
    if (msg.header.msg_type !== 'comm_open') {
      return;
    }
    seen.add((msg as KernelMessage.ICommOpenMsg).content.comm_id);
    if (seen.size > KEEP) {
      seen.delete(seen.values().next().value as string);
    }
    waiting.forEach(check => check());
  });
  binding.commGate = (ids: string[]) => {
    const kernel = session.session?.kernel;
    if (!kernel || kernel.name !== KERNEL || kernel.connectionStatus !== 'connected') {
      return Promise.resolve(); // no kernel connection here to bring the models
    }
    return new Promise<void>(resolve => {
      const done = () => {
        waiting.delete(check);
        window.clearTimeout(timer);
        resolve();
      };
      const check = () => {
        if (ids.every(id => seen.has(id))) {
          done();
        }
      };
      const timer = window.setTimeout(done, GATE_MS);
      waiting.add(check);
      check();
    });
  };
}
