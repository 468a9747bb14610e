/**
 * A small SVG line chart for the Batching section: a few series over time, no chart library.
 * The time axis is zoomed to the data (a 30 s test fills the chart); the right axis shows each
 * series' latest value with its unit. Colours come from JupyterLab theme variables so dark
 * mode works.
 */
import React from 'react';

export interface ISeries {
  label: string;
  color: string; // a CSS colour, usually var(--jp-...)
  points: { t: number; v: number | null }[];
}

const W = 300;
const H = 90;
const PAD_L = 30;
const PAD_R = 56; // the right axis: latest values with units
const PAD_B = 14;
const MIN_SPAN_S = 10;

/** `12.3 ms`, `480 req/s`, `0.25 rows`: short numbers with their unit. */
export function withUnit(v: number | null | undefined, unit: string): string {
  if (v === null || v === undefined || !isFinite(v)) {
    return `- ${unit}`;
  }
  const shown = Math.abs(v) >= 100 ? Math.round(v).toString() : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${shown} ${unit}`;
}

function span(seconds: number): string {
  return seconds >= 120 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds)} s`;
}

export function LineChart(props: {
  title: string;
  unit: string;
  series: ISeries[];
  /** the longest time shown; the axis zooms in to the data inside it */
  windowSeconds: number;
  className?: string;
}): JSX.Element {
  const all = props.series.flatMap(s => s.points);
  const now = all.length ? Math.max(...all.map(p => p.t)) : Date.now() / 1000;
  const oldest = all.length ? Math.min(...all.map(p => p.t)) : now;
  const shown = Math.min(props.windowSeconds, Math.max(MIN_SPAN_S, now - oldest));
  const t0 = now - shown;
  const values = all.filter(p => p.v !== null && p.t >= t0).map(p => p.v as number);
  const top = values.length ? Math.max(...values) * 1.15 || 1 : 1;
  const x = (t: number): number => PAD_L + ((t - t0) / shown) * (W - PAD_L - PAD_R);
  const y = (v: number): number => 4 + (1 - v / top) * (H - PAD_B - 8);
  const paths = props.series.map(s => {
    let d = '';
    let pen = false;
    for (const p of s.points) {
      if (p.t < t0 || p.v === null) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)} `;
      pen = true;
    }
    const latest = [...s.points].reverse().find(p => p.t >= t0 && p.v !== null);
    return { s, d: d.trim(), latest: latest ? (latest.v as number) : null };
  });
  const drawn = paths.filter(p => p.d).length;
  // right-axis labels at their values, nudged apart when two series sit close together
  const labels = paths
    .filter(p => p.latest !== null)
    .map(p => ({ ...p, at: y(p.latest as number) + 3 }))
    .sort((a, b) => a.at - b.at);
  for (let i = 1; i < labels.length; i++) {
    labels[i].at = Math.max(labels[i].at, labels[i - 1].at + 9);
  }
  return (
    <div className={`nbento-chart ${props.className ?? ''}`} data-series-drawn={drawn} data-span-s={Math.round(shown)}>
      <div className="nbento-chart-title">
        {props.title} ({props.unit})
        {props.series.map(s => (
          <span key={s.label} className="nbento-chart-legend">
            <span className="nbento-chart-swatch" style={{ background: s.color }} />
            {s.label}
          </span>
        ))}
      </div>
      <svg viewBox={`0 0 ${W} ${H}`} width="100%" role="img" aria-label={`${props.title} (${props.unit})`}>
        <line className="nbento-chart-axis" x1={PAD_L} y1={H - PAD_B} x2={W - PAD_R} y2={H - PAD_B} />
        <line className="nbento-chart-axis" x1={PAD_L} y1={2} x2={PAD_L} y2={H - PAD_B} />
        <line className="nbento-chart-axis" x1={W - PAD_R} y1={2} x2={W - PAD_R} y2={H - PAD_B} />
        <text className="nbento-chart-label" x={PAD_L - 3} y={10} textAnchor="end">
          {top < 10 ? top.toFixed(1) : Math.round(top)}
        </text>
        <text className="nbento-chart-label" x={PAD_L - 3} y={H - PAD_B} textAnchor="end">
          0
        </text>
        <text className="nbento-chart-label" x={PAD_L} y={H - 2}>
          -{span(shown)}
        </text>
        <text className="nbento-chart-label" x={W - PAD_R} y={H - 2} textAnchor="end">
          now
        </text>
        {paths.map(({ s, d }) =>
          d ? (
            <path key={s.label} className="nbento-chart-line" d={d} stroke={s.color} fill="none" strokeWidth={1.6} />
          ) : null
        )}
        {props.series.map(s =>
          s.points
            .filter(p => p.t >= t0 && p.v !== null)
            .map(p => (
              <circle
                key={`${s.label}-${p.t}`}
                className="nbento-chart-dot"
                cx={x(p.t)}
                cy={y(p.v as number)}
                r={1.8}
                fill={s.color}
              />
            ))
        )}
        {labels.map(l => (
          <text
            key={l.s.label}
            className="nbento-chart-label nbento-chart-latest"
            data-series={l.s.label}
            x={W - PAD_R + 3}
            y={Math.min(l.at, H - PAD_B)}
            style={{ fill: l.s.color }}
          >
            {withUnit(l.latest, props.unit)}
          </text>
        ))}
        {drawn === 0 && (
          <text className="nbento-chart-label" x={(W - PAD_R + PAD_L) / 2} y={H / 2} textAnchor="middle">
            no traffic yet
          </text>
        )}
      </svg>
    </div>
  );
}
