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
    const panel = new AnodePanel();
    app.shell.add(panel, 'right', { rank: 600 });
    const follow = () => void panel.setDocument(tracker.currentWidget?.context.path ?? null);
    tracker.currentChanged.connect(follow);
    labShell?.currentPathChanged.connect(follow);
    void app.restored.then(follow);
  }
};

export default plugin;
