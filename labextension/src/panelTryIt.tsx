/**
 * Try it: pick an API (a JupyterLab-styled dropdown), edit its JSON body, send it through the
 * Jupyter server (POST /nbento/servers/ID/call/API). Each API keeps its own typed body while
 * you switch between them, and every send starts from a clean slate: no answer or error of an
 * earlier request stays on screen next to a new one.
 */
import React, { useEffect, useState } from 'react';
import { HTMLSelect } from '@jupyterlab/ui-components';
import { formatMs } from './format';
import { IApiForm, ICallAnswer, IServerInfo, postJSON, proxyUrl, requestAPI } from './request';

export function TryItSection(props: { server: IServerInfo | null }): JSX.Element {
  const { server } = props;
  const [apis, setApis] = useState<IApiForm[]>([]);
  const [api, setApi] = useState('');
  const [bodies, setBodies] = useState<Record<string, string>>({});
  const [answer, setAnswer] = useState<ICallAnswer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [sending, setSending] = useState(false);
  const ready = server && server.state !== 'stopped' && server.state !== 'starting';
  const serverKey = ready ? `${server!.id}:${server!.generation}` : '';
  useEffect(() => {
    if (!ready) {
      setApis([]);
      return;
    }
    requestAPI<{ apis: IApiForm[] }>(`servers/${encodeURIComponent(server!.id)}/apis`)
      .then(r => {
        setApis(r.apis);
        // a body typed before a reload stays; new APIs start from their example
        setBodies(old => {
          const next: Record<string, string> = {};
          for (const form of r.apis) {
            next[form.name] = old[form.name] ?? JSON.stringify(form.example, null, 2);
          }
          return next;
        });
        setApi(current => (r.apis.some(a => a.name === current) ? current : r.apis[0]?.name ?? ''));
        setError(null);
      })
      .catch(e => setError(String(e.message ?? e)));
  }, [serverKey]);
  const choose = (name: string): void => {
    setApi(name);
    setAnswer(null);
    setError(null);
  };
  const body = bodies[api] ?? '';
  const send = async (): Promise<void> => {
    // a fresh request: nothing from the previous one stays next to this one's outcome
    setAnswer(null);
    setError(null);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body || '{}');
    } catch (e: any) {
      setError(`The body is not valid JSON: ${e.message}. Fix it and send again.`);
      return;
    }
    setSending(true);
    try {
      setAnswer(
        await postJSON<ICallAnswer>(
          `servers/${encodeURIComponent(server!.id)}/call/${encodeURIComponent(api)}`,
          parsed
        )
      );
    } catch (e: any) {
      setError(String(e.message ?? e));
    }
    setSending(false);
  };
  if (!ready) {
    return <div className="nbento-muted">Start the server to try its APIs.</div>;
  }
  const form = apis.find(a => a.name === api);
  return (
    <div className="nbento-tryit">
      <div className="nbento-tryit-row">
        <HTMLSelect
          className="nbento-tryit-api"
          aria-label="API to call"
          value={api}
          onChange={e => choose(e.currentTarget.value)}
          options={apis.map(a => ({ label: a.name, value: a.name }))}
        />
        <a
          className="nbento-tryit-docs"
          href={proxyUrl(server!.id, 'docs')}
          target="_blank"
          rel="noreferrer"
          title="this server's OpenAPI docs (Swagger UI), through the Jupyter server"
        >
          /docs
        </a>
      </div>
      {form?.summary && <div className="nbento-muted nbento-tryit-summary">{form.summary}</div>}
      <textarea
        className="jp-mod-styled nbento-tryit-body"
        aria-label={`JSON body for ${api}`}
        rows={6}
        spellCheck={false}
        value={body}
        onChange={e => {
          const text = e.target.value;
          setBodies(old => ({ ...old, [api]: text }));
        }}
      />
      <div className="nbento-buttons">
        <button className="jp-Button jp-mod-styled jp-mod-accept nbento-tryit-send" disabled={!api || sending} onClick={send}>
          {sending ? 'Sending…' : 'Send'}
        </button>
      </div>
      {error && <div className="nbento-error nbento-tryit-error">{error}</div>}
      {answer && (
        <div className="nbento-tryit-answer">
          <div className="nbento-muted">
            <span className={answer.status < 400 ? 'nbento-ok nbento-tryit-status' : 'nbento-error nbento-tryit-status'}>
              HTTP {answer.status}
            </span>{' '}
            · <span className="nbento-tryit-latency">{formatMs(answer.latency_ms)}</span>
          </div>
          <pre className="nbento-source nbento-tryit-response">{JSON.stringify(answer.body, null, 2)}</pre>
        </div>
      )}
    </div>
  );
}
