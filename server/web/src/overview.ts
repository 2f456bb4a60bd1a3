// The first screen: every node's pods, those with open findings first (soonest OOM on top), each
// with a sparkline of its memory against the limit and the ETA to OOM.
import { apiGet } from './api.js';
import { onLive, type View } from './app-state.js';
import { clear, h, time } from './dom.js';
import { formatBytes, formatDuration, summarisePods, type PodSummary } from './model.js';
import { sparkline } from './sparkline.js';
import type { AgentRow, Finding, SeriesPoint, TargetRow } from './wire.js';
import { targetHref, podHref, findingHref } from './routes.js';

const MAX_SPARKLINES = 40;

export function overviewView(): View {
  const el = h('section', { class: 'overview' });
  const status = h('p', { class: 'muted', 'data-testid': 'overview-status' }, 'loading…');
  const body = h('div');
  el.append(h('h2', {}, 'Nodes and pods'), status, body);
  let disposed = false;
  let timer: number | null = null;

  const load = async (): Promise<void> => {
    const [agents, targets, findings] = await Promise.all([
      apiGet<{ agents: AgentRow[] }>('/api/v1/agents'),
      apiGet<{ targets: TargetRow[] }>('/api/v1/targets'),
      apiGet<{ findings: Finding[] }>('/api/v1/findings?limit=2000'),
    ]);
    if (disposed) return;
    const pods = summarisePods(targets.targets, findings.findings, Date.now());
    const series = new Map<TargetRow, SeriesPoint[]>();
    await Promise.all(
      pods
        .slice(0, MAX_SPARKLINES)
        .map((p) => p.chartTarget)
        .filter((t): t is TargetRow => t !== null)
        .map(async (t) => {
          const r = await apiGet<{ points: SeriesPoint[] }>(`/api/v1/series?node=${encodeURIComponent(t.node)}&targetKey=${encodeURIComponent(t.targetKey)}&maxPoints=120`);
          series.set(t, r.points);
        }),
    );
    if (disposed) return;
    render(agents.agents, pods, series, findings.findings);
  };

  const render = (agents: AgentRow[], pods: PodSummary[], series: Map<TargetRow, SeriesPoint[]>, findings: Finding[]): void => {
    clear(body);
    const open = findings.filter((f) => f.status === 'open').length;
    status.textContent = `${agents.filter((a) => a.connected).length} of ${agents.length} agents connected · ${open} open findings · updated ${time(Date.now())}`;
    const nodes = [...new Set([...pods.map((p) => p.node), ...agents.map((a) => a.node)])];
    // Nodes with findings first, in the order of their most urgent pod.
    nodes.sort((a, b) => pods.findIndex((p) => p.node === a) - pods.findIndex((p) => p.node === b));
    for (const node of nodes) {
      const agent = agents.find((a) => a.node === node);
      const rows = pods.filter((p) => p.node === node);
      const table = h(
        'table',
        { class: 'pods' },
        h('thead', {}, h('tr', {}, h('th', {}, 'pod'), h('th', {}, 'memory vs limit'), h('th', {}, 'now'), h('th', {}, 'ETA to OOM'), h('th', {}, 'open findings'))),
      );
      const tbody = h('tbody');
      for (const p of rows) {
        const points = p.chartTarget ? series.get(p.chartTarget) ?? [] : [];
        const last = points[points.length - 1];
        const podName = p.pod ? `${p.namespace}/${p.pod}` : '(not in a pod)';
        tbody.append(
          h(
            'tr',
            { class: p.openFindings.length > 0 ? 'has-findings' : '', 'data-testid': 'pod-row', 'data-pod': p.pod ?? '' },
            h('td', {}, p.pod ? h('a', { href: podHref(p.node, p.namespace ?? '', p.pod) }, podName) : podName, h('div', { class: 'muted small' }, `${p.targets.length} tracked`)),
            h('td', {}, p.chartTarget ? h('a', { href: targetHref(p.chartTarget.node, p.chartTarget.targetKey), title: 'open the memory chart' }, sparkline(points)) : '—'),
            h('td', {}, last ? `${formatBytes(last.anonBytes)} / ${formatBytes(last.limitBytes)}` : '—'),
            h('td', { class: p.etaSec !== null ? 'eta' : '' }, p.etaSec !== null ? formatDuration(p.etaSec) : '—'),
            h(
              'td',
              {},
              ...p.openFindings.slice(0, 6).map((f) => h('a', { class: `badge kind-${f.kind}`, href: findingHref(f.id), title: f.summary, 'data-testid': 'finding-badge' }, f.kind)),
              p.openFindings.length > 6 ? ` +${p.openFindings.length - 6}` : '',
            ),
          ),
        );
      }
      if (rows.length === 0) tbody.append(h('tr', {}, h('td', { colspan: '5', class: 'muted' }, 'nothing tracked on this node yet')));
      table.append(tbody);
      body.append(h('h3', {}, `node ${node}`, agent ? h('span', { class: agent.connected ? 'ok small' : 'warn small' }, agent.connected ? ' · agent connected' : ' · agent offline') : ''), table);
    }
    if (nodes.length === 0) body.append(h('p', { class: 'muted' }, 'No agent has reported yet.'));
    const recent = [...findings].sort((a, b) => b.updatedAt - a.updatedAt).slice(0, 15);
    if (recent.length > 0) {
      body.append(
        h('h2', {}, 'Latest findings'),
        h(
          'ul',
          { class: 'findings', 'data-testid': 'latest-findings' },
          ...recent.map((f) =>
            h('li', {}, h('span', { class: `badge kind-${f.kind}` }, f.kind), ' ', h('a', { href: findingHref(f.id) }, f.summary), h('span', { class: 'muted small' }, ` · ${f.status} · ${time(f.updatedAt)}`)),
          ),
        ),
      );
    }
  };

  let dueAt = 0;
  const schedule = (delayMs: number): void => {
    if (disposed) return;
    // A finding must not wait behind a slower refresh already scheduled for series points.
    if (timer !== null) {
      if (Date.now() + delayMs >= dueAt) return;
      clearTimeout(timer);
    }
    dueAt = Date.now() + delayMs;
    timer = window.setTimeout(() => {
      timer = null;
      load().catch((err: Error) => (status.textContent = `could not load: ${err.message}`));
    }, delayMs);
  };
  load().catch((err: Error) => (status.textContent = `could not load: ${err.message}`));
  // New findings show at once; series only move sparklines, so they refresh less often.
  const off = onLive((m) => schedule(m.type === 'findings' ? 200 : 5000));
  return {
    el,
    dispose() {
      disposed = true;
      off();
      if (timer !== null) clearTimeout(timer);
    },
  };
}
