/**
 * Server and Batching sections (Try it is in panelTryIt.tsx): they share one development
 * server (the one started for the active notebook), polled every two seconds while it runs.
 *
 * The Server section tells the truth about that server: starting, running, reloading, reload
 * failed (still serving generation N) or stopped; a change that did not load is one message in
 * the error colour naming the notebook cell and line, which jumps there when clicked, and
 * clears once the fixed cell is re-run (the panel then saves, which reloads) or saved.
 */
import React, { useEffect, useState } from 'react';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { LineChart, withUnit } from './chart';
import { formatMs } from './format';
import { deleteAPI, IChartPoint, IServerInfo, postJSON, proxyUrl, requestAPI } from './request';

const POLL_MS = 2000;
const CHART_WINDOW_S = 300;

/** A change that did not load, pointed at its notebook cell (jupyter_ext/actions/reload_errors.py). */
export interface IServerError {
  message: string;
  cell_id: string | null;
  cell_index: number | null;
  cell_label: string | null;
  line: number | null;
  generation: number | null;
  text: string;
}

interface ILivePoint extends IChartPoint {
  interval_s: number;
  requests_per_s: number;
  mean_latency_ms: number | null;
  queue_depth: number;
}

interface IBatcher {
  name: string;
  max_batch_size: number | null;
  max_latency_ms: number | null;
  workers: number | null;
}

/** What GET /nbento/servers says beyond IServerInfo (see DevServer.describe). */
export interface IServerState extends IServerInfo {
  error: IServerError | null;
  last_save: { text: string; ok: boolean; at: number } | null;
  history: ILivePoint[];
  batching: IBatcher[];
  small_batch_reason: string | null;
}

interface IReloadOutcome {
  changed: boolean;
  ok: boolean;
  elapsed_ms: number;
  error: IServerError | null;
  text: string;
  server: IServerState;
}

export function useServer(panel: NotebookPanel): {
  server: IServerInfo | null;
  setServer: (s: IServerInfo | null) => void;
} {
  const [server, setServer] = useState<IServerInfo | null>(null);
  useEffect(() => {
    let stopped = false;
    let timer: number | undefined;
    const poll = async (): Promise<void> => {
      try {
        const r = await requestAPI<{ servers: IServerInfo[] }>('servers');
        const mine = r.servers.filter(s => s.notebook === panel.context.path);
        if (!stopped) {
          setServer(mine.length ? mine[mine.length - 1] : null);
        }
      } catch {
        // keep the last known state; the next poll retries
      }
      if (!stopped) {
        timer = window.setTimeout(poll, POLL_MS);
      }
    };
    void poll();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [panel]);
  return { server, setServer };
}

function when(iso: string | null): string {
  if (!iso) {
    return '-';
  }
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toLocaleTimeString();
}

/** The badge's words: what the server does right now. */
export function stateText(server: IServerState, saving: boolean): { state: string; text: string } {
  if (saving && server.state !== 'stopped') {
    return { state: 'reloading', text: 'reloading' };
  }
  if (server.state === 'reload-failed') {
    const generation = server.error?.generation ?? server.generation;
    return { state: 'reload-failed', text: `reload failed (serving generation ${generation ?? '-'})` };
  }
  return { state: server.state, text: server.state };
}

/** Select the notebook cell `cellId` and put the cursor on `line` (1-based) in its editor. */
export function jumpToCellLine(panel: NotebookPanel, cellId: string, line: number | null): void {
  const notebook = panel.content;
  const index = notebook.widgets.findIndex(c => c.model.id === cellId);
  if (index < 0) {
    return;
  }
  notebook.activeCellIndex = index;
  void notebook.scrollToItem(index).then(() => {
    const editor = notebook.widgets[index].editor;
    if (editor && line !== null) {
      const last = Math.max(0, editor.lineCount - 1);
      editor.setCursorPosition({ line: Math.min(Math.max(0, line - 1), last), column: 0 });
      editor.focus();
    }
  });
}

function ServerError(props: { panel: NotebookPanel; error: IServerError }): JSX.Element {
  const { panel, error } = props;
  const where = error.cell_label ? `${error.cell_label}${error.line !== null ? ` line ${error.line}` : ''}` : null;
  const rest = where && error.text.startsWith(where) ? error.text.slice(where.length).replace(/^:\s*/, '') : error.text;
  return (
    <div className="nbento-error nbento-reload-error" data-cell-id={error.cell_id ?? ''}>
      {where && error.cell_id ? (
        <button
          className="nbento-error-jump"
          title="go to this cell and line"
          onClick={() => jumpToCellLine(panel, error.cell_id as string, error.line)}
        >
          {where}
        </button>
      ) : null}
      {where && error.cell_id ? ': ' : ''}
      {rest}
    </div>
  );
}

export function ServerSection(props: {
  panel: NotebookPanel;
  server: IServerInfo | null;
  setServer: (s: IServerInfo | null) => void;
}): JSX.Element {
  const { panel } = props;
  const server = props.server as IServerState | null;
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const running = server && server.state !== 'stopped';
  const serverId = running ? server!.id : null;
  const errorCell = running ? server!.error?.cell_id ?? null : null;
  useEffect(() => {
    // each save re-captures the notebook into the served folder; the server hot-reloads.
    // A change that does not load is an answer (HTTP 200, ok false), not a failed request.
    if (!serverId) {
      return;
    }
    const onSave = (_: unknown, state: string): void => {
      if (state !== 'completed') {
        return;
      }
      setSaving(true);
      postJSON<IReloadOutcome>(`servers/${encodeURIComponent(serverId)}/reload`, {})
        .then(o => {
          props.setServer(o.server);
          setError(null);
        })
        .catch(e => setError(String(e.message ?? e)))
        .finally(() => setSaving(false));
    };
    panel.context.saveState.connect(onSave);
    return () => {
      panel.context.saveState.disconnect(onSave);
    };
  }, [serverId, panel]);
  useEffect(() => {
    // the cell the error points at ran again without error: save, so the server reloads it
    if (!errorCell) {
      return;
    }
    const onExecuted = (_: unknown, args: { notebook: unknown; cell: { model: { id: string } }; success: boolean }): void => {
      if (args.notebook === panel.content && args.success && args.cell.model.id === errorCell) {
        void panel.context.save();
      }
    };
    NotebookActions.executed.connect(onExecuted);
    return () => {
      NotebookActions.executed.disconnect(onExecuted);
    };
  }, [errorCell, panel]);
  const start = async (): Promise<void> => {
    setBusy('saving the notebook and starting the server…');
    setError(null);
    try {
      await panel.context.save();
      props.setServer(await postJSON<IServerInfo>('servers', { notebook: panel.context.path }));
    } catch (e: any) {
      setError(String(e.message ?? e));
    }
    setBusy(null);
  };
  const stop = async (): Promise<void> => {
    if (!server) {
      return;
    }
    setBusy('stopping…');
    try {
      await deleteAPI(`servers/${encodeURIComponent(server.id)}`);
      props.setServer(null);
    } catch (e: any) {
      setError(String(e.message ?? e));
    }
    setBusy(null);
  };
  const badge = server ? stateText(server, saving) : null;
  const reloaded = server && server.generation !== null && server.generation > 1;
  return (
    <div className="nbento-server">
      <div className="nbento-buttons">
        <button className="jp-Button jp-mod-styled jp-mod-accept nbento-server-start" disabled={!!busy || !!running} onClick={start}>
          Start
        </button>
        <button className="jp-Button jp-mod-styled nbento-server-stop" disabled={!!busy || !running} onClick={stop}>
          Stop
        </button>
      </div>
      {busy && <div className="nbento-muted">{busy}</div>}
      {error && <div className="nbento-error">{error}</div>}
      {!server && !busy && <div className="nbento-muted">No server for this notebook. Start serves its captured cells with hot reload.</div>}
      {server && badge && (
        <div className="nbento-server-info">
          <div>
            <span className={`nbento-state nbento-state-${badge.state}`}>{badge.text}</span>{' '}
            <a className="nbento-server-url" href={server.url} target="_blank" rel="noreferrer">
              {server.url}
            </a>{' '}
            · <a className="nbento-server-docs" href={proxyUrl(server.id, 'docs')} target="_blank" rel="noreferrer" title="OpenAPI docs, through the Jupyter server">/docs</a>
          </div>
          <div className="nbento-muted">
            PID {server.pid} · started by {server.started_by === 'kernel' ? 'the kernel' : 'this panel'} · service{' '}
            {server.service ?? '?'}
          </div>
          <div className="nbento-muted nbento-last-reload">
            generation {server.generation ?? '-'} · {reloaded ? 'reloaded' : 'loaded'} at {when(server.loaded_at)}
            {server.last_reload_ms !== null ? ` in ${formatMs(server.last_reload_ms)}` : ''}
          </div>
          {running && server.error && <ServerError panel={panel} error={server.error} />}
          {running && !server.error && !saving && server.last_save?.ok && (
            <div className="nbento-muted nbento-reload-outcome">{server.last_save.text}</div>
          )}
          {server.metrics && (
            <div className="nbento-muted nbento-server-totals">
              since start: {server.metrics.requests} requests · {server.metrics.errors} errors · p95{' '}
              {withUnit(server.metrics.p95_ms, 'ms')}
            </div>
          )}
          {server.state === 'stopped' && server.log_tail.length > 0 && (
            <pre className="nbento-source">{server.log_tail.join('\n')}</pre>
          )}
        </div>
      )}
    </div>
  );
}

function batcherText(b: IBatcher): string {
  const parts = [
    `max batch ${b.max_batch_size ?? '-'} rows`,
    `max latency ${b.max_latency_ms ?? '-'} ms`
  ];
  if (b.workers !== null) {
    parts.push(`${b.workers} worker${b.workers === 1 ? '' : 's'}`);
  }
  return `${b.name}: ${parts.join(' · ')}`;
}

export function BatchingSection(props: { server: IServerInfo | null }): JSX.Element {
  const server = props.server as IServerState | null;
  if (!server || server.state === 'stopped') {
    return <div className="nbento-muted">Charts appear while the server runs.</div>;
  }
  const history = server.history ?? [];
  const last = history.length ? history[history.length - 1] : null;
  const seconds = history.reduce((n, p) => n + (p.interval_s ?? 0), 0);
  const total = history.reduce((n, p) => n + p.requests, 0);
  return (
    <div className="nbento-batching">
      <div className="nbento-live">
        {last ? (
          <>
            last {Math.round(last.interval_s)} s: p50 <b className="nbento-live-p50">{withUnit(last.p50_ms, 'ms')}</b> · p95{' '}
            <b className="nbento-live-p95">{withUnit(last.p95_ms, 'ms')}</b> ·{' '}
            <b className="nbento-live-rps">{withUnit(last.requests_per_s, 'req/s')}</b> ·{' '}
            <b className="nbento-live-batch">{withUnit(last.mean_batch_size, 'rows/batch')}</b>
          </>
        ) : (
          <span className="nbento-muted">waiting for two scrapes of /metrics</span>
        )}
      </div>
      <LineChart
        className="nbento-chart-latency"
        title="latency"
        unit="ms"
        windowSeconds={CHART_WINDOW_S}
        series={[
          { label: 'p50', color: 'var(--jp-brand-color1)', points: history.map(p => ({ t: p.t, v: p.p50_ms })) },
          { label: 'p95', color: 'var(--jp-warn-color1)', points: history.map(p => ({ t: p.t, v: p.p95_ms })) }
        ]}
      />
      <LineChart
        className="nbento-chart-rate"
        title="throughput"
        unit="req/s"
        windowSeconds={CHART_WINDOW_S}
        series={[
          {
            label: 'requests/s',
            color: 'var(--jp-info-color1, var(--jp-brand-color2))',
            points: history.map(p => ({ t: p.t, v: p.requests ? p.requests_per_s : null }))
          }
        ]}
      />
      <LineChart
        className="nbento-chart-batch"
        title="batch size"
        unit="rows"
        windowSeconds={CHART_WINDOW_S}
        series={[
          { label: 'mean rows/batch', color: 'var(--jp-success-color1)', points: history.map(p => ({ t: p.t, v: p.mean_batch_size })) }
        ]}
      />
      {server.small_batch_reason && (
        <div className="nbento-batch-reason">Small batches: {server.small_batch_reason}.</div>
      )}
      <div className="nbento-muted nbento-batch-settings">
        {server.batching.length
          ? server.batching.map(b => <div key={b.name}>{batcherText(b)}</div>)
          : 'no batchable model method or API: every call runs on its own'}
      </div>
      <div className="nbento-muted nbento-chart-note">
        Each point is one interval between two scrapes of the server's /metrics (not a total since
        start). Latency is measured in the server, from request to response; the network and the
        Jupyter proxy are not included.
      </div>
      <div className="nbento-muted nbento-chart-total">
        {history.length ? `${total} requests in the last ${Math.round(seconds)} s` : 'no interval yet'}
      </div>
    </div>
  );
}
