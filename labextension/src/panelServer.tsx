/**
 * Server and Batching sections (Try it is in panelTryIt.tsx): they share one development
 * server (the one started for the active notebook), polled every two seconds while it runs.
 */
import React, { useEffect, useState } from 'react';
import { NotebookPanel } from '@jupyterlab/notebook';
import { LineChart } from './chart';
import { formatMs } from './format';
import { deleteAPI, IServerInfo, postJSON, proxyUrl, requestAPI } from './request';

const POLL_MS = 2000;

interface IReloadOutcome {
  changed: boolean;
  ok: boolean;
  elapsed_ms: number;
  error: string | null;
}
const CHART_WINDOW_S = 300;

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

export function ServerSection(props: {
  panel: NotebookPanel;
  server: IServerInfo | null;
  setServer: (s: IServerInfo | null) => void;
}): JSX.Element {
  const { panel, server } = props;
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [reload, setReload] = useState<string | null>(null);
  const running = server && server.state !== 'exited';
  const serverId = running ? server!.id : null;
  useEffect(() => {
    // each save re-captures the notebook into the served folder; the server hot-reloads
    if (!serverId) {
      return;
    }
    const onSave = (_: unknown, state: string): void => {
      if (state !== 'completed') {
        return;
      }
      postJSON<IReloadOutcome>(`servers/${encodeURIComponent(serverId)}/reload`, {})
        .then(o =>
          setReload(
            !o.changed
              ? 'saved: the service code did not change'
              : o.ok
                ? `saved: reloaded in ${formatMs(o.elapsed_ms)}`
                : o.error ?? 'the reload did not finish in time'
          )
        )
        .catch(e => setReload(String(e.message ?? e)));
    };
    panel.context.saveState.connect(onSave);
    return () => {
      panel.context.saveState.disconnect(onSave);
    };
  }, [serverId, panel]);
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
      {reload && running && <div className="nbento-muted nbento-reload-outcome">{reload}</div>}
      {error && <div className="nbento-error">{error}</div>}
      {!server && !busy && <div className="nbento-muted">No server for this notebook. Start serves its captured cells with hot reload.</div>}
      {server && (
        <div className="nbento-server-info">
          <div>
            <span className={`nbento-state nbento-state-${server.state}`}>{server.state}</span>{' '}
            <a className="nbento-server-url" href={server.url} target="_blank" rel="noreferrer">
              {server.url}
            </a>{' '}
            · <a className="nbento-server-docs" href={proxyUrl(server.id, 'docs')} target="_blank" rel="noreferrer" title="OpenAPI docs, through the Jupyter server">/docs</a>
          </div>
          <div className="nbento-muted">
            PID {server.pid} · started by {server.started_by === 'kernel' ? 'the kernel' : 'this panel'} · service{' '}
            {server.service ?? '?'} · generation {server.generation ?? '-'}
          </div>
          <div className="nbento-muted nbento-last-reload">
            last reload {when(server.loaded_at)}
            {server.last_reload_ms !== null ? ` (took ${formatMs(server.last_reload_ms)})` : ''}
          </div>
          {server.reload_error && <div className="nbento-error nbento-reload-error">{server.reload_error}</div>}
          {server.metrics && (
            <div className="nbento-muted">
              {server.metrics.requests} requests · {server.metrics.errors} errors · p95 {formatMs(server.metrics.p95_ms)}
            </div>
          )}
          {server.state === 'exited' && server.log_tail.length > 0 && (
            <pre className="nbento-source">{server.log_tail.join('\n')}</pre>
          )}
        </div>
      )}
    </div>
  );
}

export function BatchingSection(props: { server: IServerInfo | null }): JSX.Element {
  const history = props.server?.history ?? [];
  if (!props.server || props.server.state === 'exited') {
    return <div className="nbento-muted">Charts appear while the server runs.</div>;
  }
  return (
    <div className="nbento-batching">
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
        className="nbento-chart-batch"
        title="batch size"
        unit="rows"
        windowSeconds={CHART_WINDOW_S}
        series={[
          { label: 'mean rows/batch', color: 'var(--jp-success-color1)', points: history.map(p => ({ t: p.t, v: p.mean_batch_size })) }
        ]}
      />
      <div className="nbento-muted">
        {history.length ? `${history.reduce((n, p) => n + p.requests, 0)} requests in the last ${Math.round(CHART_WINDOW_S / 60)} min` : 'waiting for the first scrape'}
      </div>
    </div>
  );
}
