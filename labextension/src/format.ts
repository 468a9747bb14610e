/**
 * How the panel writes sizes and times, the same way the CLI, the magics and the widget do
 * (runtime/store/artifacts.py `human_size`, jupyter_ext/kernel/panel.py `human_ms`):
 * binary units (B, KiB, MiB, GiB) and ms below a second, s above.
 */

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || isNaN(bytes)) {
    return 'size unknown';
  }
  let value = bytes;
  for (const unit of ['B', 'KiB', 'MiB', 'GiB']) {
    if (value < 1024 || unit === 'GiB') {
      return unit === 'B' ? `${Math.round(value)} B` : `${value.toFixed(1)} ${unit}`;
    }
    value /= 1024;
  }
  return `${bytes} B`;
}

export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || isNaN(ms)) {
    return '-';
  }
  if (ms < 10) {
    return `${ms.toFixed(1)} ms`;
  }
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  return `${(ms / 1000).toFixed(1)} s`;
}
