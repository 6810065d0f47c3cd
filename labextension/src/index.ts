/**
 * anode-labextension: the Anode sidebar follows the current notebook's log.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';

import { AnodePanel } from './panel';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'anode-labextension:panel',
  description: 'The live execution queue, runtimes and timeline of the notebook log.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILabShell],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, labShell: ILabShell | null) => {
    // An input() answered elsewhere (another collaborator, the panel) leaves
    // JupyterLab's own prompt open and its "pending input" guard set, which
    // would refuse to run any cell: close both.
    const settle = (path: string) => {
      tracker.forEach(nb => {
        if (nb.context.path !== path) {
          return;
        }
        const kernel = nb.sessionContext.session?.kernel as
          | { removeInputGuard?: () => void }
          | null
          | undefined;
        kernel?.removeInputGuard?.();
        nb.node.querySelectorAll<HTMLInputElement>('.jp-Stdin-input').forEach(input => {
          input.disabled = true;
          input.placeholder = 'answered in the Anode panel';
        });
      });
    };
    const panel = new AnodePanel(settle);
    app.shell.add(panel, 'right', { rank: 600 });
    const follow = () => void panel.setDocument(tracker.currentWidget?.context.path ?? null);
    tracker.currentChanged.connect(follow);
    labShell?.currentPathChanged.connect(follow);
    void app.restored.then(follow);
  }
};

export default plugin;
