// The room's bitrate (all rungs), mix fps and CPU over the last minutes, one line each, each
// scaled to its own maximum (shown in the legend).

import type { Point } from "./types";

const W = 600;
const H = 120;

const SERIES: { key: "kbps" | "fps" | "cpu"; label: string; unit: string; cls: string }[] = [
  { key: "kbps", label: "Bitrate", unit: "kbit/s", cls: "s-kbps" },
  { key: "fps", label: "Mix", unit: "fps", cls: "s-fps" },
  { key: "cpu", label: "CPU", unit: "%", cls: "s-cpu" },
];

export function Chart({ points }: { points: Point[] }) {
  const t1 = points.length ? points[points.length - 1].t : 0;
  const t0 = points.length ? points[0].t : 0;
  const span = Math.max(60_000, t1 - t0);
  const lines = SERIES.map((s) => {
    const vals = points.map((p) => p[s.key] ?? 0);
    const max = Math.max(1, ...vals);
    const d = points
      .map((p, i) => `${(((p.t - (t1 - span)) / span) * W).toFixed(1)},${(H - (vals[i] / max) * (H - 4) - 2).toFixed(1)}`)
      .join(" ");
    const last = vals.length ? vals[vals.length - 1] : 0;
    return { ...s, d, max, last };
  });
  const summary = lines.map((l) => `${l.label} ${l.last.toFixed(0)} ${l.unit} (max ${l.max.toFixed(0)})`).join(", ");
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={`Last ${Math.round(span / 60000)} minutes: ${summary}`}>
        <rect x="0" y="0" width={W} height={H} class="chart-bg" />
        {lines.map((l) => (
          <polyline key={l.key} points={l.d} class={l.cls} vector-effect="non-scaling-stroke" />
        ))}
      </svg>
      <figcaption>
        {lines.map((l) => (
          <span key={l.key} class={`legend ${l.cls}`}>
            {l.label} {l.last.toFixed(0)} {l.unit} <small>(max {l.max.toFixed(0)})</small>
          </span>
        ))}
        <span class="legend">last {Math.round(span / 60000)} min</span>
      </figcaption>
    </figure>
  );
}
