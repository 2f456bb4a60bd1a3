// The target view's chart (uPlot): anon memory and working set over time against the limit, the
// growth finding's fitted line projected to the limit with the ETA marked, OOM kills as vertical
// markers and the other findings as ticks on the same time axis. uPlot draws on one canvas; the
// labels that matter (limit, ETA) are drawn there too and repeated in the DOM for readers.
import uPlot from 'uplot';
import { COLORS } from './sparkline.js';
import { formatBytes, formatDuration, trendLine, type Finding, type SeriesPoint } from './model.js';

export interface ChartInput {
  points: SeriesPoint[];
  /** The open (or latest) growth finding of the target, if any. */
  growth: (Finding & { kind: 'growth' }) | null;
  /** Every finding of the target (OOM kills become markers). */
  findings: Finding[];
  nowMs: number;
}

const KIND_COLORS: Record<string, string> = { growth: COLORS.trend, fanout: '#0891b2', 'suspicious-spawn': '#be123c', 'oom-kill': COLORS.oom };

export interface TargetChart {
  update(input: ChartInput): void;
  destroy(): void;
}

interface Prepared {
  data: uPlot.AlignedData;
  limit: number | null;
  etaAtMs: number | null;
  etaSec: number | null;
  markers: Array<{ atMs: number; kind: string }>;
  maxY: number;
}

function prepare(input: ChartInput): Prepared {
  const limit = input.points.reduce<number | null>((m, p) => (p.limitBytes !== null ? p.limitBytes : m), input.growth?.details.limitBytes ?? null);
  const trend = input.growth ? trendLine(input.growth.details) : null;
  const rows = new Map<number, [number | null, number | null, number | null]>();
  for (const p of input.points) rows.set(p.atMs, [p.anonBytes, p.workingSetBytes, null]);
  for (const [t, v] of trend?.points ?? []) {
    const row = rows.get(t);
    if (row) row[2] = v;
    else rows.set(t, [null, null, v]);
  }
  const times = [...rows.keys()].sort((a, b) => a - b);
  const xs = times.map((t) => t / 1000);
  const anon = times.map((t) => rows.get(t)![0]);
  const ws = times.map((t) => rows.get(t)![1]);
  const tr = times.map((t) => rows.get(t)![2]);
  const lim = times.map(() => limit);
  const markers = input.findings.map((f) => ({ atMs: f.kind === 'oom-kill' ? f.at : f.at, kind: f.kind }));
  const peak = Math.max(0, ...anon.map((v) => v ?? 0), ...ws.map((v) => v ?? 0), limit ?? 0);
  const etaSec = trend?.etaAtMs != null ? Math.max(0, (trend.etaAtMs - input.nowMs) / 1000) : null;
  return { data: [xs, anon, ws, lim, tr], limit, etaAtMs: trend?.etaAtMs ?? null, etaSec, markers, maxY: peak * 1.1 || 1 };
}

export function createTargetChart(container: HTMLElement, labels: { eta: HTMLElement; limit: HTMLElement }, input: ChartInput): TargetChart {
  let state = prepare(input);
  const drawOverlay = (u: uPlot): void => {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const ratio = window.devicePixelRatio || 1;
    ctx.save();
    ctx.font = `${12 * ratio}px system-ui, sans-serif`;
    // uPlot leaves the axes' alignment on the context.
    ctx.textAlign = 'left';
    ctx.textBaseline = 'alphabetic';
    // Findings on the time axis: OOM kills as full-height lines, the rest as ticks at the bottom.
    for (const m of state.markers) {
      const x = u.valToPos(m.atMs / 1000, 'x', true);
      if (x < left || x > left + width) continue;
      ctx.strokeStyle = KIND_COLORS[m.kind] ?? '#555';
      ctx.fillStyle = ctx.strokeStyle;
      if (m.kind === 'oom-kill') {
        ctx.lineWidth = 1.5 * ratio;
        ctx.setLineDash([2 * ratio, 2 * ratio]);
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, top + height);
        ctx.stroke();
        ctx.setLineDash([]);
        ctx.fillText('OOM', x + 3 * ratio, top + 12 * ratio);
      } else {
        ctx.beginPath();
        ctx.moveTo(x, top + height);
        ctx.lineTo(x - 5 * ratio, top + height - 9 * ratio);
        ctx.lineTo(x + 5 * ratio, top + height - 9 * ratio);
        ctx.closePath();
        ctx.fill();
      }
    }
    if (state.limit !== null) {
      const y = u.valToPos(state.limit, 'y', true);
      ctx.fillStyle = COLORS.limit;
      ctx.fillText(`limit ${formatBytes(state.limit)}`, left + 6 * ratio, y - 5 * ratio);
    }
    if (state.etaAtMs !== null) {
      const x = u.valToPos(state.etaAtMs / 1000, 'x', true);
      if (x >= left && x <= left + width + 1) {
        ctx.strokeStyle = COLORS.trend;
        ctx.lineWidth = 2 * ratio;
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, top + height);
        ctx.stroke();
        const text = `OOM in ${formatDuration(state.etaSec)}`;
        const w = ctx.measureText(text).width;
        ctx.fillStyle = COLORS.trend;
        ctx.fillText(text, Math.max(left, x - w - 6 * ratio), top + 48 * ratio);
      }
    }
    ctx.restore();
  };
  const setLabels = (): void => {
    labels.limit.textContent = state.limit !== null ? `limit ${formatBytes(state.limit)}` : 'no memory limit';
    labels.eta.textContent =
      state.etaAtMs !== null ? `OOM in ${formatDuration(state.etaSec)} (at ${new Date(state.etaAtMs).toLocaleTimeString(undefined, { hour12: false })}) at the fitted slope` : 'no ETA: no growth toward a limit';
  };
  const width = Math.max(320, container.clientWidth || 800);
  const opts: uPlot.Options = {
    width,
    height: 320,
    scales: { x: { time: true }, y: { range: () => [0, state.maxY] } },
    axes: [{}, { values: (_u, vals) => vals.map((v) => formatBytes(v)), size: 80 }],
    series: [
      {},
      { label: 'anon RSS', points: { show: false }, stroke: COLORS.anon, fill: COLORS.anonFill, width: 2, spanGaps: true, value: (_u, v) => formatBytes(v) },
      { label: 'working set', points: { show: false }, stroke: COLORS.workingSet, width: 1.5, spanGaps: true, value: (_u, v) => formatBytes(v) },
      { label: 'limit', points: { show: false }, stroke: COLORS.limit, width: 2, dash: [8, 4], spanGaps: true, value: (_u, v) => formatBytes(v) },
      { label: 'fitted trend', points: { show: false }, stroke: COLORS.trend, width: 2, dash: [4, 4], spanGaps: true, value: (_u, v) => formatBytes(v) },
    ],
    hooks: { draw: [drawOverlay] },
  };
  const plot = new uPlot(opts, state.data, container);
  setLabels();
  const onResize = () => plot.setSize({ width: Math.max(320, container.clientWidth || 800), height: 320 });
  window.addEventListener('resize', onResize);
  return {
    update(next) {
      state = prepare(next);
      plot.setData(state.data);
      setLabels();
    },
    destroy() {
      window.removeEventListener('resize', onResize);
      plot.destroy();
    },
  };
}
