/**
 * `input()` in the notebook, for every viewer: a prompt under the cell that
 * waits, answered by whoever types first (an `v1.InputReplied` in the log);
 * it goes away everywhere once the log says the request is settled. Text from
 * the prompt is set as text, never as HTML.
 */
import { NotebookPanel } from '@jupyterlab/notebook';

import { IInputChange, NotebookBinding } from './document';

export function showInputs(panel: NotebookPanel, binding: NotebookBinding): void {
  const open = new Map<string, HTMLElement>();
  const show = (change: IInputChange) => {
    open.get(change.executionId)?.remove();
    open.delete(change.executionId);
    if (change.cellId === null) {
      settleKernelInput(panel);
      return;
    }
    const cell = panel.content.widgets.find(c => c.model.id === change.cellId);
    const area = cell?.node.querySelector('.jp-OutputArea');
    if (!cell || !area) {
      return;
    }
    const form = document.createElement('form');
    form.className = 'jp-Stdin anode-stdin';
    form.dataset.executionId = change.executionId;
    const label = document.createElement('label');
    label.className = 'jp-Stdin-prompt';
    label.textContent = change.prompt;
    const input = document.createElement('input');
    input.className = 'jp-Stdin-input';
    input.type = change.password ? 'password' : 'text';
    input.autocomplete = 'off';
    label.appendChild(input);
    form.appendChild(label);
    form.addEventListener('submit', ev => {
      ev.preventDefault();
      input.disabled = true;
      const execution_id = change.executionId;
      void binding
        .push([{ name: 'v1.InputReplied', args: { execution_id, value: input.value } }])
        .catch(() => (input.disabled = false));
    });
    // Keys typed here are the prompt's, not the notebook's shortcuts.
    form.addEventListener('keydown', ev => ev.stopPropagation());
    area.appendChild(form);
    open.set(change.executionId, form);
  };
  binding.waitingInputs.forEach(show); // asked before this tab opened
  binding.input.connect((_, change) => show(change));
}

/**
 * An input request was settled in the log: a prompt the kernel put up for
 * its own client (JupyterLab's stdin box) would wait for ever, and the
 * kernel's input guard would refuse to run any cell: close both.
 */
function settleKernelInput(panel: NotebookPanel): void {
  const kernel = panel.sessionContext.session?.kernel as
    | { removeInputGuard?: () => void }
    | null
    | undefined;
  kernel?.removeInputGuard?.();
  panel.node
    .querySelectorAll<HTMLInputElement>('.jp-Stdin:not(.anode-stdin) .jp-Stdin-input')
    .forEach(input => {
      input.disabled = true;
      input.placeholder = 'answered elsewhere';
    });
}
