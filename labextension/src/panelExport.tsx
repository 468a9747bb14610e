/**
 * Export section: POST /nbento/exports, then poll the job for progress and the paths. A new
 * run starts from a clean slate (the previous run's list is dropped), and the list is the
 * files this export wrote: the writer removes what an earlier export left that the new
 * layout lacks (runtime/export/written.py), so the folder and the list agree.
 */
import React, { useState } from 'react';
import { NotebookPanel } from '@jupyterlab/notebook';
import { IJob, postJSON, requestAPI } from './request';

const POLL_MS = 500;

export function ExportSection(props: { panel: NotebookPanel }): JSX.Element {
  const [split, setSplit] = useState(false);
  const [yatai, setYatai] = useState(false);
  const [image, setImage] = useState('');
  const [job, setJob] = useState<IJob | null>(null);
  const [error, setError] = useState<string | null>(null);
  const running = job?.state === 'running';
  const run = async (): Promise<void> => {
    setError(null);
    setJob(null);
    try {
      await props.panel.context.save();
      let current = await postJSON<IJob>('exports', {
        notebook: props.panel.context.path,
        split_runners: split,
        yatai,
        image: image.trim() || null
      });
      setJob(current);
      while (current.state === 'running') {
        await new Promise(r => setTimeout(r, POLL_MS));
        current = await requestAPI<IJob>(`jobs/${current.id}`);
        setJob(current);
      }
    } catch (e: any) {
      setError(String(e.message ?? e));
    }
  };
  return (
    <div className="nbento-export">
      <label>
        <input type="checkbox" className="nbento-export-split" checked={split} onChange={e => setSplit(e.target.checked)} /> split runners
      </label>
      <label>
        <input type="checkbox" className="nbento-export-yatai" checked={yatai} onChange={e => setYatai(e.target.checked)} /> Yatai BentoDeployment
      </label>
      <input
        className="jp-mod-styled nbento-export-image"
        placeholder="image (default: service:version)"
        value={image}
        onChange={e => setImage(e.target.value)}
      />
      <button className="jp-Button jp-mod-styled jp-mod-accept nbento-export-run" disabled={running} onClick={run}>
        Build Bento + manifests
      </button>
      {error && <div className="nbento-error">{error}</div>}
      {job && (
        <div className="nbento-export-job">
          <progress className="nbento-progress" max={1} value={job.progress} />
          <div className={job.state === 'failed' ? 'nbento-error' : 'nbento-muted'}>
            {job.state === 'failed' ? job.error : job.message}
          </div>
          {job.result && (
            <div className="nbento-export-paths">
              <div>
                Bento: <code className="nbento-path">{job.result.bento}</code>
              </div>
              <div>
                {job.result.manifests.length} manifest files in{' '}
                <code className="nbento-path">{job.result.manifests_dir}</code>:
              </div>
              <ul className="nbento-export-files">
                {job.result.manifests.map(f => (
                  <li key={f}>
                    <code className="nbento-path">{f.split('/').pop()}</code>
                  </li>
                ))}
              </ul>
            </div>
          )}
        </div>
      )}
    </div>
  );
}
