/**
 * The content provider of notebooks Anode serves: JupyterLab's notebook widget
 * gets a shared model bound to the notebook's log (document.ts) instead of
 * loading the file, and Save asks the server to write the file from the log.
 * Notebooks of another kernel stay JupyterLab's own (loaded and saved by REST).
 */
import { YNotebook } from '@jupyter/ydoc';
import { Contents, IContentProvider, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { requestJSON } from './connection';
import { NotebookBinding } from './document';

export const PROVIDER_ID = 'anode';

export class AnodeContentProvider implements IContentProvider {
  constructor(
    private readonly drive: Contents.IDrive,
    private readonly settings = ServerConnection.makeSettings()
  ) {}

  readonly sharedModelFactory: Contents.ISharedFactory = {
    collaborative: true,
    createNew: options => {
      if (options.contentType !== 'notebook' || typeof options.format !== 'string') {
        return undefined;
      }
      const model = new YNotebook();
      const binding = new NotebookBinding(options.path, model, this.settings);
      this.bindings.set(options.path, binding);
      binding.saved.connect((_, saved) => {
        this._fileChanged.emit({
          type: 'save',
          oldValue: null,
          newValue: {
            path: saved.path,
            last_modified: saved.last_modified,
            ...(saved.hash ? { hash: saved.hash, hash_algorithm: saved.hash_algorithm ?? undefined } : {})
          }
        });
      });
      model.disposed.connect(() => {
        binding.dispose();
        if (this.bindings.get(options.path) === binding) {
          this.bindings.delete(options.path);
        }
      });
      return model;
    }
  };

  get fileChanged(): ISignal<this, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  /** The binding of an open notebook, if Anode serves it. */
  async binding(path: string): Promise<NotebookBinding | null> {
    const binding = this.bindings.get(path);
    return binding && (await binding.ready.catch(() => false)) ? binding : null;
  }

  bindingNow(path: string): NotebookBinding | undefined {
    return this.bindings.get(path);
  }

  async get(path: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    const binding = this.bindings.get(path);
    if (binding && options?.content !== false && (await binding.ready)) {
      // The model holds the log's document already: no content, so the
      // context does not overwrite it with the file's.
      const model = await this.drive.get(path, { ...options, content: false });
      return { ...model, format: options?.format ?? 'json', content: null };
    }
    return this.drive.get(path, { ...options, contentProviderId: undefined });
  }

  async save(
    path: string,
    options: Partial<Contents.IModel> & Contents.IContentProvisionOptions = {}
  ): Promise<Contents.IModel> {
    const binding = this.bindings.get(path);
    if (binding && (await binding.ready)) {
      const model = await requestJSON<Contents.IModel>(
        `anode/api/documents?path=${encodeURIComponent(path)}`,
        { method: 'PUT' },
        this.settings
      );
      return { ...model, content: null };
    }
    return this.drive.save(path, { ...options, contentProviderId: undefined });
  }

  private bindings = new Map<string, NotebookBinding>();
  private _fileChanged = new Signal<this, Contents.IChangedArgs>(this);
}
