/**
 * Which outputs a tab renders trusted (DESIGN.md, "Trust"). The document
 * carries everyone's outputs and never a `trusted` flag, so each tab decides
 * for itself, as JupyterLab does for a kernel of its own: the outputs of what
 * this tab's person ran are trusted (their HTML may run script, their widgets
 * render); a collaborator's are not, unless this person trusts the notebook
 * (JupyterLab's "Trust Notebook", for this tab). Nothing of it is written:
 * JupyterLab would write `trusted` into the cell's metadata and its outputs
 * back into the document.
 */
import { ICellModel, ICodeCellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { CommandRegistry } from '@lumino/commands';
import { Signal } from '@lumino/signaling';

import { NotebookBinding } from './document';

/** The cell model's own handlers of output changes (they write the shared model). */
interface IWriting {
  onOutputsChange: (...args: unknown[]) => void;
  onGenericChange: (...args: unknown[]) => void;
  onTrustedChanged: (model: unknown, args: { newValue: boolean; oldValue: boolean }) => void;
  __anodeTrust?: boolean;
}

/** Re-render the cell's outputs trusted or not, in this tab only. */
function setOutputsTrusted(cell: ICodeCellModel, trusted: boolean): void {
  const outputs = cell.outputs;
  if (outputs.trusted === trusted) {
    return;
  }
  const m = cell as unknown as IWriting;
  outputs.changed.disconnect(m.onOutputsChange, m);
  outputs.changed.disconnect(m.onGenericChange, m);
  try {
    outputs.trusted = trusted;
  } finally {
    outputs.changed.connect(m.onGenericChange, m);
    outputs.changed.connect(m.onOutputsChange, m);
  }
}

export function trustOwnOutputs(
  panel: NotebookPanel,
  binding: NotebookBinding,
  commands: CommandRegistry
): void {
  const model = panel.content.model;
  if (!model) {
    return;
  }
  // The person chose "Trust Notebook" in this tab (JupyterLab also marks new and
  // cleared cells trusted; that is not a choice to trust what others run in them).
  let trustedHere = false;
  const decide = (cell: ICodeCellModel) => {
    const m = cell as unknown as IWriting;
    if (!m.__anodeTrust) {
      m.__anodeTrust = true;
      m.onTrustedChanged = (_, args) => {
        (cell.stateChanged as Signal<ICellModel, unknown>).emit({
          name: 'trusted',
          oldValue: args.oldValue,
          newValue: args.newValue
        });
      };
    }
    const mine = !!binding.user && binding.ranBy(cell.id) === binding.user;
    setOutputsTrusted(cell, mine || trustedHere);
  };
  const each = () => {
    for (let i = 0; i < model.cells.length; i++) {
      const cell = model.cells.get(i);
      if (cell.type === 'code') {
        decide(cell as ICodeCellModel);
      }
    }
  };
  each();
  model.cells.changed.connect(each);
  commands.commandExecuted.connect((_, args) => {
    if (args.id !== 'notebook:trust' || panel.isDisposed || !panel.isVisible) {
      return;
    }
    void args.result.then(() => {
      const cells = Array.from({ length: model.cells.length }, (_, i) => model.cells.get(i));
      if (cells.length && cells.every(c => c.trusted)) {
        trustedHere = true; // accepted in the dialog
        each();
      }
    });
  });
  binding.ranByChanged.connect((_, cellId) => {
    for (let i = 0; i < model.cells.length; i++) {
      const cell = model.cells.get(i);
      if (cell.id === cellId && cell.type === 'code') {
        decide(cell as ICodeCellModel);
      }
    }
  });
}
