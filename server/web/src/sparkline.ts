// The overview's small chart: anon memory (filled) under the limit line, drawn on a canvas
// directly; dozens of them must cost next to nothing.
import type { SeriesPoint } from './model.js';

export const COLORS = {
  anon: '#2563eb',
  anonFill: 'rgba(37, 99, 235, 0.18)',
  workingSet: '#059669',
  limit: '#dc2626',
  trend: '#d97706',
  oom: '#7c3aed',
  grid: '#e5e7eb',
};

export function sparkline(points: SeriesPoint[], width = 160, height = 36): HTMLCanvasElement {
  const canvas = document.createElement('canvas');
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.className = 'sparkline';
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext('2d');
  if (!ctx || points.length === 0) return canvas;
  ctx.scale(ratio, ratio);
  const limit = points.reduce<number | null>((m, p) => (p.limitBytes !== null ? Math.max(m ?? 0, p.limitBytes) : m), null);
  const maxY = Math.max(limit ?? 0, ...points.map((p) => p.anonBytes)) * 1.08 || 1;
  const t0 = points[0]!.atMs;
  const t1 = Math.max(points[points.length - 1]!.atMs, t0 + 1);
  const x = (t: number) => ((t - t0) / (t1 - t0)) * (width - 2) + 1;
  const y = (v: number) => height - 1 - (v / maxY) * (height - 2);
  ctx.beginPath();
  ctx.moveTo(x(t0), y(0));
  for (const p of points) ctx.lineTo(x(p.atMs), y(p.anonBytes));
  ctx.lineTo(x(t1), y(0));
  ctx.closePath();
  ctx.fillStyle = COLORS.anonFill;
  ctx.fill();
  ctx.beginPath();
  points.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.atMs), y(p.anonBytes)) : ctx.lineTo(x(p.atMs), y(p.anonBytes))));
  ctx.strokeStyle = COLORS.anon;
  ctx.lineWidth = 1.5;
  ctx.stroke();
  if (limit !== null) {
    ctx.beginPath();
    ctx.setLineDash([4, 3]);
    ctx.moveTo(0, y(limit));
    ctx.lineTo(width, y(limit));
    ctx.strokeStyle = COLORS.limit;
    ctx.lineWidth = 1;
    ctx.stroke();
  }
  return canvas;
}
