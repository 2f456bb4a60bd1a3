// One container or process: its memory over time against the limit, the growth trend projected
// to the limit with the ETA, OOM kills and findings on the same axis, kept live by the stream;
// below it the findings and the heap snapshots of the target.
import { apiGet } from './api.js';
import { onLive, type View } from './app-state.js';
import { h, time } from './dom.js';
import { findingMatchesTarget, formatBytes } from './model.js';
import { findingHref, podHref } from './routes.js';
import { snapshotsPanel } from './snapshots-panel.js';
import { createTargetChart, type TargetChart } from './target-chart.js';
import type { Finding, SeriesPoint, TargetRow } from './wire.js';

const MAX_POINTS = 2000;

export function targetView(node: string, targetKey: string): View {
  const el = h('section', { class: 'target' });
  const title = h('h2', { 'data-testid': 'target-title' }, targetKey);
  const sub = h('p', { class: 'muted' });
  const labels = { eta: h('span', { class: 'eta-label', 'data-testid': 'eta-label' }), limit: h('span', { class: 'limit-label', 'data-testid': 'limit-label' }) };
  const chartBox = h('div', { class: 'chart', 'data-testid': 'target-chart' });
  const findingsList = h('ul', { class: 'findings', 'data-testid': 'target-findings' });
  const status = h('p', { class: 'muted' }, 'loading…');
  el.append(title, sub, h('p', { class: 'chart-labels' }, labels.limit, ' · ', labels.eta), chartBox, status, h('h3', {}, 'Findings on this target'), findingsList);
  let chart: TargetChart | null = null;
  let disposed = false;
  let target: TargetRow | null = null;
  let points: SeriesPoint[] = [];
  let findings: Finding[] = [];
  let disposeSnapshots: (() => void) | null = null;

  const growth = (): (Finding & { kind: 'growth' }) | null => {
    const g = findings.filter((f): f is Finding & { kind: 'growth' } => f.kind === 'growth').sort((a, b) => (a.status === b.status ? b.updatedAt - a.updatedAt : a.status === 'open' ? -1 : 1));
    return g[0] ?? null;
  };
  const redraw = (): void => {
    const input = { points, findings, growth: growth(), nowMs: Date.now() };
    if (chart) chart.update(input);
    else chart = createTargetChart(chartBox, labels, input);
    findingsList.replaceChildren(
      ...[...findings]
        .sort((a, b) => a.at - b.at)
        .map((f) =>
          h('li', {}, h('span', { class: `badge kind-${f.kind}` }, f.kind), ' ', h('a', { href: findingHref(f.id) }, f.summary), h('span', { class: 'muted small' }, ` · ${f.status} · first ${time(f.at)} · updated ${time(f.updatedAt)}`)),
        ),
    );
    if (findings.length === 0) findingsList.append(h('li', { class: 'muted' }, 'none'));
    const last = points[points.length - 1];
    status.textContent = last ? `${points.length} points · latest ${formatBytes(last.anonBytes)} anon at ${time(last.atMs)}` : 'no points yet';
  };

  const load = async (): Promise<void> => {
    const q = `node=${encodeURIComponent(node)}`;
    const targets = await apiGet<{ targets: TargetRow[] }>(`/api/v1/targets?${q}`);
    target = targets.targets.find((t) => t.targetKey === targetKey) ?? null;
    if (!target) {
      status.textContent = `no target ${targetKey} on node ${node}`;
      return;
    }
    const t = target;
    title.textContent = t.kind === 'container' ? `container ${t.container ?? '?'} in ${t.namespace}/${t.pod}` : `${t.comm ?? '?'} (pid ${t.pid}) in ${t.namespace ?? '-'}/${t.pod ?? '-'}`;
    sub.replaceChildren(t.kind === 'process' && t.cmdline ? h('code', { class: 'cmdline' }, t.cmdline) : '', t.pod ? h('a', { href: podHref(node, t.namespace ?? '', t.pod) }, ' process tree of the pod →') : '');
    const findingQuery = t.pod ? `&namespace=${encodeURIComponent(t.namespace ?? '')}&pod=${encodeURIComponent(t.pod)}` : '';
    const [series, fs] = await Promise.all([
      apiGet<{ points: SeriesPoint[] }>(`/api/v1/series?${q}&targetKey=${encodeURIComponent(targetKey)}&maxPoints=${MAX_POINTS}`),
      apiGet<{ findings: Finding[] }>(`/api/v1/findings?${q}${findingQuery}&limit=1000`),
    ]);
    if (disposed) return;
    points = series.points;
    findings = fs.findings.filter((f) => findingMatchesTarget(f, t));
    redraw();
    const panel = snapshotsPanel(t);
    disposeSnapshots = panel.dispose;
    el.append(panel.el);
  };

  const off = onLive((m) => {
    if (!target || m.node !== node) return;
    if (m.type === 'series') {
      const fresh = m.points.filter((p) => p.targetKey === targetKey);
      if (fresh.length === 0) return;
      points = [...points, ...fresh].slice(-MAX_POINTS);
      redraw();
    } else {
      let changed = false;
      for (const e of m.events) {
        if (!findingMatchesTarget(e.finding, target)) continue;
        findings = [...findings.filter((f) => f.id !== e.finding.id), e.finding];
        changed = true;
      }
      if (changed) redraw();
    }
  });
  load().catch((err: Error) => (status.textContent = `could not load: ${err.message}`));
  return {
    el,
    dispose() {
      disposed = true;
      off();
      chart?.destroy();
      disposeSnapshots?.();
    },
  };
}
