/** Models section: the store's models (GET /nbento/models), newest first, with delete. */
import React, { useEffect, useState } from 'react';
import { deleteAPI, IModelInfo, requestAPI } from './request';

function size(bytes: number): string {
  if (bytes < 1024) {
    return `${bytes} B`;
  }
  if (bytes < 1024 * 1024) {
    return `${(bytes / 1024).toFixed(1)} KB`;
  }
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function ModelsSection(props: {
  tick: number;
  onJumpToCell: (cellId: string) => void;
}): JSX.Element {
  const [models, setModels] = useState<IModelInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = (): void => {
    requestAPI<{ models: IModelInfo[] }>('models')
      .then(r => {
        setModels(r.models);
        setError(null);
      })
      .catch(e => setError(String(e.message ?? e)));
  };
  useEffect(load, [props.tick]);
  const remove = (tag: string): void => {
    if (!window.confirm(`Delete model ${tag} from the store?`)) {
      return;
    }
    deleteAPI(`models/${encodeURIComponent(tag)}`).then(load, e => setError(String(e.message ?? e)));
  };
  return (
    <div className="nbento-models">
      <button className="jp-Button jp-mod-styled nbento-refresh-models" onClick={load}>
        refresh
      </button>
      {error && <div className="nbento-error">{error}</div>}
      {models && models.length === 0 && (
        <div className="nbento-muted">No models saved yet. Run a cell that calls save_model.</div>
      )}
      {models?.map(m => (
        <div key={m.tag} className="nbento-model" data-tag={m.tag}>
          <div>
            <b className="nbento-model-name">{m.name}</b>
            <span className="nbento-muted">:{m.version}</span>
            <button className="nbento-link nbento-model-delete" title="delete this version" onClick={() => remove(m.tag)}>
              ✕
            </button>
          </div>
          <div className="nbento-muted">
            {m.framework?.name} {m.framework?.version ?? ''} · {m.serializer} · {size(m.size_bytes)}
          </div>
          <div className="nbento-model-signatures">
            {Object.entries(m.signatures).map(([method, sig]) => (
              <code key={method} title={sig.description ?? ''}>
                {method}
                {sig.batchable ? ` (batchable, dim ${sig.batch_dim})` : ''}
              </code>
            ))}
          </div>
          {m.provenance?.cell_id && (
            <div className="nbento-muted">
              saved by{' '}
              <a href="#" onClick={e => { e.preventDefault(); props.onJumpToCell(m.provenance.cell_id as string); }}>
                cell {m.provenance.cell_id}
              </a>
              {m.provenance.notebook ? ` of ${m.provenance.notebook.split('/').pop()}` : ''}
            </div>
          )}
        </div>
      ))}
    </div>
  );
}
