/**
 * The one place the panel talks to the server: `{baseUrl}/nbento/...` on the Jupyter
 * server (never the service port). ServerConnection adds the token / XSRF header.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export class NbentoApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'nbento', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON: keep the text for the message
    }
  }
  if (!response.ok) {
    const message =
      (data && typeof data === 'object' && data.message) ||
      (typeof data === 'string' && data) ||
      response.statusText;
    throw new NbentoApiError(response.status, String(message));
  }
  return data as T;
}

/**
 * A development server's page or API through the Jupyter server (`{baseUrl}nbento/proxy/ID/PATH`,
 * jupyter_ext/server/proxy.py): works where the browser cannot reach 127.0.0.1:PORT (JupyterHub).
 */
export function proxyUrl(
  serverId: string,
  path: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  return URLExt.join(settings.baseUrl, 'nbento', 'proxy', encodeURIComponent(serverId), path);
}

export function postJSON<T>(endPoint: string, body: unknown): Promise<T> {
  return requestAPI<T>(endPoint, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/json' }
  });
}

export function deleteAPI<T>(endPoint: string): Promise<T> {
  return requestAPI<T>(endPoint, { method: 'DELETE' });
}

/* ---- shapes of the REST answers (see jupyter_ext/server/handlers.py) ---- */

export interface IModelInfo {
  tag: string;
  name: string;
  version: string;
  serializer: string;
  framework: { name: string; version?: string | null };
  signatures: Record<
    string,
    { batchable: boolean; batch_dim: number; description?: string | null }
  >;
  size_bytes: number;
  creation_time: string;
  labels: Record<string, string>;
  provenance: { notebook?: string | null; cell_id?: string | null };
}

export interface ICapturedCell {
  cell_id: string;
  kind: string;
  name: string | null;
  index: number | null;
}

export interface IServiceInfo {
  notebook: string;
  service: string;
  service_dir: string;
  cells: Record<string, ICapturedCell[]>;
  source: string | null;
  error: string | null;
  warnings: { name: string; cell_id: string; line: number; message: string }[];
}

export interface IChartPoint {
  t: number;
  requests: number;
  p50_ms: number | null;
  p95_ms: number | null;
  mean_batch_size: number | null;
}

export interface IServerInfo {
  id: string;
  notebook: string;
  url: string;
  docs_url: string;
  pid: number;
  /** 'kernel' for a server a notebook's kernel started (adopted), 'jupyter' for the panel's */
  started_by: 'kernel' | 'jupyter';
  state: string;
  service: string | null;
  generation: number | null;
  loaded_at: string | null;
  last_reload_ms: number | null;
  reload_error: string | null;
  metrics: {
    requests: number;
    errors: number;
    p50_ms: number | null;
    p95_ms: number | null;
    mean_batch_size: number | null;
  } | null;
  history: IChartPoint[];
  log_tail: string[];
}

export interface IApiForm {
  name: string;
  summary: string;
  schema: unknown;
  example: unknown;
}

export interface ICallAnswer {
  status: number;
  latency_ms: number;
  body: unknown;
}

export interface IJob {
  id: string;
  state: 'running' | 'done' | 'failed';
  progress: number;
  message: string;
  log: string[];
  error: string | null;
  result: {
    bento: string;
    bento_tag: string | null;
    manifests_dir: string;
    manifests: string[];
    warnings: string[];
  } | null;
}
