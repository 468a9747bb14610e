/**
 * Cells section: the active notebook's captured cells grouped by kind (click to jump), the
 * buttons that tag the active cell, and the service the saved notebook makes (warnings and
 * the generated module, from GET /nbento/services).
 */
import React, { useEffect, useState } from 'react';
import { NotebookPanel } from '@jupyterlab/notebook';
import { cellMark, cellName, cellTooltip, Kind, KINDS, tagCell, untagCell } from './cells';
import { IServiceInfo, requestAPI } from './request';

interface IRow {
  index: number;
  kind: Kind;
  name: string | null;
  via: string;
  label: string;
  title: string;
  preview: string;
}

function rowsOf(panel: NotebookPanel): IRow[] {
  const rows: IRow[] = [];
  const cells = panel.content.model?.cells;
  if (!cells) {
    return rows;
  }
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    const mark = cellMark(cell);
    if (mark) {
      const lines = cell.sharedModel
        .getSource()
        .split('\n')
        .filter(l => l.trim() && !l.startsWith('%%nbento'));
      rows.push({
        index: i,
        ...mark,
        label: cellName(cell, mark),
        title: `jump to this cell (${cellTooltip(cell, i, mark)})`,
        preview: (lines[0] ?? '').slice(0, 48)
      });
    }
  }
  return rows;
}

export function CellsSection(props: { panel: NotebookPanel; tick: number }): JSX.Element {
  const { panel } = props;
  const [name, setName] = useState('');
  const [message, setMessage] = useState<string | null>(null);
  const [service, setService] = useState<IServiceInfo | null>(null);
  const [serviceError, setServiceError] = useState<string | null>(null);
  const [showSource, setShowSource] = useState(false);
  const [, setLocal] = useState(0);
  const rows = rowsOf(panel);
  const active = panel.content.activeCell;
  const activeMark = active ? cellMark(active.model) : null;

  const loadService = (): void => {
    requestAPI<IServiceInfo>(
      `services?notebook=${encodeURIComponent(panel.context.path)}`
    )
      .then(s => {
        setService(s);
        setServiceError(null);
      })
      .catch(e => setServiceError(String(e.message ?? e)));
  };
  useEffect(() => {
    loadService();
    const onSave = (_: unknown, state: string): void => {
      if (state === 'completed') {
        loadService();
      }
    };
    panel.context.saveState.connect(onSave);
    return () => {
      panel.context.saveState.disconnect(onSave);
    };
  }, [panel]);

  const jump = (index: number): void => {
    panel.content.activeCellIndex = index;
    void panel.content.scrollToItem(index);
    setLocal(x => x + 1);
  };
  const tag = (kind: Kind): void => {
    const cell = panel.content.activeCell;
    if (!cell) {
      setMessage('select a cell first');
      return;
    }
    const problem = tagCell(cell.model, kind, kind === 'preprocess' ? null : name.trim());
    setMessage(problem ?? `now captured: ${cellName(cell.model)}`);
    setLocal(x => x + 1);
  };
  const untag = (): void => {
    const cell = panel.content.activeCell;
    if (!cell) {
      return;
    }
    const problem = untagCell(cell.model);
    setMessage(problem ?? `${cellName(cell.model)} is no longer captured`);
    setLocal(x => x + 1);
  };

  return (
    <div className="nbento-cells">
      {KINDS.map(kind => (
        <div key={kind} className={`nbento-cell-group nbento-cell-group-${kind}`}>
          <div className="nbento-subhead">{kind}</div>
          {rows.filter(r => r.kind === kind).length === 0 && (
            <div className="nbento-muted">none</div>
          )}
          {rows
            .filter(r => r.kind === kind)
            .map(r => (
              <button
                key={r.index}
                className="nbento-cell-row"
                data-cell-index={r.index}
                title={r.title}
                onClick={() => jump(r.index)}
              >
                <span className="nbento-cell-label">{r.label}</span>
                <span className="nbento-muted"> {r.preview}</span>
              </button>
            ))}
        </div>
      ))}
      <div className="nbento-tagbar">
        <div className="nbento-muted" title={active ? cellTooltip(active.model, panel.content.activeCellIndex, activeMark) : ''}>
          Active cell:{' '}
          {active && <span className="nbento-active-prompt">{cellName(active.model, null)} </span>}
          <span className="nbento-active-mark">
            {activeMark ? `${activeMark.kind}${activeMark.name ? ' ' + activeMark.name : ''}` : active ? 'not captured' : 'none'}
          </span>
        </div>
        <input
          className="jp-mod-styled nbento-tag-name"
          placeholder="NAME for model / api"
          value={name}
          onChange={e => setName(e.target.value)}
        />
        <div className="nbento-buttons">
          <button className="jp-Button jp-mod-styled nbento-tag-preprocess" onClick={() => tag('preprocess')}>
            preprocess
          </button>
          <button className="jp-Button jp-mod-styled nbento-tag-model" onClick={() => tag('model')}>
            model
          </button>
          <button className="jp-Button jp-mod-styled nbento-tag-api" onClick={() => tag('api')}>
            api
          </button>
          <button className="jp-Button jp-mod-styled nbento-untag" onClick={untag}>
            untag
          </button>
        </div>
        {message && <div className="nbento-message">{message}</div>}
      </div>
      <div className="nbento-service">
        {serviceError && <div className="nbento-error">{serviceError}</div>}
        {service && (
          <>
            <div className="nbento-muted">
              service <b>{service.service}</b> (saved notebook) ·{' '}
              <a href="#" onClick={e => { e.preventDefault(); setShowSource(!showSource); }}>
                {showSource ? 'hide' : 'show'} generated service.py
              </a>
            </div>
            {service.error && <div className="nbento-error">{service.error}</div>}
            {service.warnings.map(w => (
              <div key={`${w.cell_id}-${w.name}`} className="nbento-warning">
                {w.message}
              </div>
            ))}
            {showSource && service.source && <pre className="nbento-source">{service.source}</pre>}
          </>
        )}
      </div>
    </div>
  );
}
