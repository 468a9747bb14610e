/**
 * A small SVG line chart for the Batching section: a few series over time, no chart library.
 * Colours come from JupyterLab theme variables so dark mode works.
 */
import React from 'react';

export interface ISeries {
  label: string;
  color: string; // a CSS colour, usually var(--jp-...)
  points: { t: number; v: number | null }[];
}

const W = 260;
const H = 90;
const PAD_L = 34;
const PAD_B = 14;

export function LineChart(props: {
  title: string;
  unit: string;
  series: ISeries[];
  windowSeconds: number;
  className?: string;
}): JSX.Element {
  const all = props.series.flatMap(s => s.points);
  const now = all.length ? Math.max(...all.map(p => p.t)) : Date.now() / 1000;
  const t0 = now - props.windowSeconds;
  const values = all.filter(p => p.v !== null && p.t >= t0).map(p => p.v as number);
  const top = values.length ? Math.max(...values) * 1.15 || 1 : 1;
  const x = (t: number): number =>
    PAD_L + ((t - t0) / props.windowSeconds) * (W - PAD_L - 4);
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
    return { s, d: d.trim() };
  });
  const drawn = paths.filter(p => p.d).length;
  return (
    <div className={`nbento-chart ${props.className ?? ''}`} data-series-drawn={drawn}>
      <div className="nbento-chart-title">
        {props.title}
        {props.series.map(s => (
          <span key={s.label} className="nbento-chart-legend">
            <span className="nbento-chart-swatch" style={{ background: s.color }} />
            {s.label}
          </span>
        ))}
      </div>
      <svg viewBox={`0 0 ${W} ${H}`} width="100%" role="img" aria-label={props.title}>
        <line className="nbento-chart-axis" x1={PAD_L} y1={H - PAD_B} x2={W} y2={H - PAD_B} />
        <line className="nbento-chart-axis" x1={PAD_L} y1={2} x2={PAD_L} y2={H - PAD_B} />
        <text className="nbento-chart-label" x={PAD_L - 3} y={10} textAnchor="end">
          {top < 10 ? top.toFixed(1) : Math.round(top)}
        </text>
        <text className="nbento-chart-label" x={PAD_L - 3} y={H - PAD_B} textAnchor="end">
          0
        </text>
        <text className="nbento-chart-label" x={PAD_L} y={H - 2}>
          -{Math.round(props.windowSeconds / 60)} min
        </text>
        <text className="nbento-chart-label" x={W - 2} y={H - 2} textAnchor="end">
          now ({props.unit})
        </text>
        {paths.map(({ s, d }) =>
          d ? (
            <path
              key={s.label}
              className="nbento-chart-line"
              d={d}
              stroke={s.color}
              fill="none"
              strokeWidth={1.6}
            />
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
        {drawn === 0 && (
          <text className="nbento-chart-label" x={W / 2} y={H / 2} textAnchor="middle">
            no traffic yet
          </text>
        )}
      </svg>
    </div>
  );
}
