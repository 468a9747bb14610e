/** Models section: the store's models (GET /nbento/models), newest first, with delete. */
import React, { useEffect, useState } from 'react';
import { formatBytes } from './format';
import { deleteAPI, IModelInfo, requestAPI } from './request';

/** How the panel names a notebook cell (cells.ts `cellName`), or null when it is not open. */
export type CellNamer = (cellId: string) => { name: string; title: string } | null;

export function ModelsSection(props: {
  tick: number;
  onJumpToCell: (cellId: string) => void;
  nameOfCell: CellNamer;
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
          <div className="nbento-model-head" title={m.tag}>
            <b className="nbento-model-name">{m.name}</b>
            <button className="nbento-link nbento-model-delete" title="delete this version" onClick={() => remove(m.tag)}>
              ✕
            </button>
          </div>
          <div className="nbento-muted nbento-model-version" title={m.tag}>
            version {m.version}
          </div>
          <div className="nbento-muted">
            {m.framework?.name} {m.framework?.version ?? ''} · {m.serializer} · {formatBytes(m.size_bytes)}
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
            <SavedBy model={m} nameOfCell={props.nameOfCell} onJumpToCell={props.onJumpToCell} />
          )}
        </div>
      ))}
    </div>
  );
}

function SavedBy(props: {
  model: IModelInfo;
  nameOfCell: CellNamer;
  onJumpToCell: (cellId: string) => void;
}): JSX.Element {
  const cellId = props.model.provenance.cell_id as string;
  const notebook = props.model.provenance.notebook?.split('/').pop();
  const named = props.nameOfCell(cellId);
  if (!named) {
    // saved from another notebook (or a cell since deleted): the id is all there is
    return (
      <div className="nbento-muted nbento-model-origin" title={`cell id ${cellId}`}>
        saved by a cell{notebook ? ` of ${notebook}` : ''}
      </div>
    );
  }
  return (
    <div className="nbento-muted nbento-model-origin">
      saved by{' '}
      <a href="#" title={named.title} onClick={e => { e.preventDefault(); props.onJumpToCell(cellId); }}>
        {named.name}
      </a>
    </div>
  );
}
