/**
 * anode-labextension: notebooks Anode serves are their log (a content provider
 * binds JupyterLab's shared model to it, a cell executor queues Run and Run All
 * in it), and the Anode sidebar follows the current notebook's log.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import {
  INotebookCellExecutor,
  INotebookTracker,
  INotebookWidgetFactory,
  NotebookWidgetFactory
} from '@jupyterlab/notebook';
import { Contents, IDefaultDrive } from '@jupyterlab/services';
import { Token } from '@lumino/coreutils';

import { AnodeCellExecutor } from './executor';
import { AnodePanel } from './panel';
import { AnodeContentProvider, PROVIDER_ID } from './provider';
import { showInputs } from './stdin';
import { trustOwnOutputs } from './trust';
import { gateWidgets } from './widgets';

/** The content provider, for the cell executor. */
const IAnodeContentProvider = new Token<AnodeContentProvider>(
  'anode-labextension:IAnodeContentProvider',
  'Binds notebooks Anode serves to their log.'
);

const contentProvider: JupyterFrontEndPlugin<AnodeContentProvider> = {
  id: 'anode-labextension:content-provider',
  description: 'Opens notebooks Anode serves from their log, and saves them from it.',
  autoStart: true,
  requires: [IDefaultDrive, INotebookWidgetFactory],
  provides: IAnodeContentProvider,
  activate: (
    app: JupyterFrontEnd,
    drive: Contents.IDrive,
    factory: NotebookWidgetFactory.IFactory
  ): AnodeContentProvider => {
    const provider = new AnodeContentProvider(drive);
    drive.contentProviderRegistry?.register(PROVIDER_ID, provider);
    factory.contentProviderId = PROVIDER_ID;
    return provider;
  }
};

/** Notebook widgets bound to a log: read-only for readers, reopened after a refusal. */
const bindingUi: JupyterFrontEndPlugin<void> = {
  id: 'anode-labextension:binding-ui',
  description: 'Read-only notebooks for readers; a notebook whose edit was refused reopens.',
  autoStart: true,
  requires: [IAnodeContentProvider, INotebookTracker],
  activate: (app: JupyterFrontEnd, provider: AnodeContentProvider, tracker: INotebookTracker) => {
    // A refused edit (a reader's tab, a write to outputs) leaves the model holding
    // what the log does not: reopen the notebook from the log.
    tracker.widgetAdded.connect((_, panel) => {
      void panel.context.ready.then(async () => {
        const binding = await provider.binding(panel.context.path);
        if (!binding) {
          return;
        }
        panel.node.dataset.anodeNotebookId = binding.notebookId;
        showInputs(panel, binding);
        gateWidgets(panel, binding);
        trustOwnOutputs(panel, binding, app.commands);
        if (!binding.writable && panel.content.model) {
          // A reader's edits would be refused: the editors say so first.
          panel.content.model.readOnly = true;
          const lock = () => panel.content.widgets.forEach(cell => (cell.readOnly = true));
          lock();
          panel.content.model.cells.changed.connect(() => requestAnimationFrame(lock));
        }
        // The file follows the log: once it holds all this tab has, nothing is unsaved.
        binding.clean.connect(() => {
          if (panel.context.model) {
            panel.context.model.dirty = false;
          }
        });
        binding.refused.connect((_, reason) => {
          const path = panel.context.path;
          console.warn(`Anode refused an edit of ${path}: ${reason}`);
          Notification.warning(`Anode refused an edit of ${path}: ${reason}. Reopening it.`);
          panel.close();
          void app.commands.execute('docmanager:open', { path, factory: 'Notebook' });
        });
      });
    });
  }
};

const cellExecutor: JupyterFrontEndPlugin<INotebookCellExecutor> = {
  id: 'anode-labextension:cell-executor',
  description: 'Run and Run All push executions into the notebook log.',
  autoStart: true,
  requires: [IAnodeContentProvider],
  provides: INotebookCellExecutor,
  activate: (_: JupyterFrontEnd, provider: AnodeContentProvider) =>
    new AnodeCellExecutor(provider)
};

const panelPlugin: JupyterFrontEndPlugin<void> = {
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

export default [contentProvider, cellExecutor, bindingUi, panelPlugin];
