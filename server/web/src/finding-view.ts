// One finding with its evidence. For a suspicious spawn: the rules with their reasons, the parent
// chain, the script's content as TEXT (a text node in a <pre>: never parsed, rendered or run),
// its sha256 and the provenance statement. Reading this is audited by the collector.
import { apiGet } from './api.js';
import { onLive, type View } from './app-state.js';
import { dateTime, facts, h } from './dom.js';
import { formatBytes, formatDuration, etaRemainingSec, findingMatchesTarget } from './model.js';
import { podHref, targetHref } from './routes.js';
import type { Finding, HeapDiffRecord, ProcessRef, TargetRow } from './wire.js';

/** A growth finding as /findings/:id serves it: with the diff of its snapshot pair, when there is one. */
type FindingWithDiff = Finding & { heapDiff?: HeapDiffRecord };

const signedCount = (n: number): string => (n > 0 ? `+${n}` : String(n));
const signedBytes = (n: number): string => (n > 0 ? `+${formatBytes(n)}` : n < 0 ? `-${formatBytes(-n)}` : '0 B');

/**
 * What grew between the two snapshots the agent took for this finding, diffed by the collector.
 * Class names and retainer paths are the target's heap: text nodes only.
 */
function heapDiffSection(d: HeapDiffRecord): HTMLElement {
  const el = h('div', { class: 'heap-diff', 'data-testid': 'heap-diff' }, h('h4', {}, 'Heap snapshot diff'));
  const r = d.result;
  let status: string;
  if (d.status === 'failed') status = `failed: ${d.reason ?? 'no reason given'}`;
  else if (d.status !== 'done' || !r) status = `${d.status}: the collector is diffing the snapshot pair`;
  else status = `done — ${signedCount(r.countDelta)} objects, ${signedBytes(r.sizeDeltaBytes)} (matched by ${r.method === 'object-ids' ? 'object id' : 'class totals'})`;
  el.append(h('p', { class: d.status === 'failed' ? 'error' : 'muted', 'data-testid': 'heap-diff-status' }, status));
  if (!r) return el;
  if (r.growers.length === 0) {
    el.append(h('p', { class: 'muted' }, 'no class grew above noise'));
    return el;
  }
  el.append(
    h(
      'table',
      { class: 'growers', 'data-testid': 'heap-growers' },
      h('thead', {}, h('tr', {}, h('th', {}, 'class'), h('th', {}, '+count'), h('th', {}, '+size'), h('th', {}, 'retained by'))),
      h(
        'tbody',
        {},
        ...r.growers.map((g) =>
          h(
            'tr',
            { 'data-testid': 'heap-grower' },
            h('td', {}, h('code', { 'data-testid': 'grower-class' }, g.className)),
            h('td', {}, signedCount(g.countDelta)),
            h('td', {}, signedBytes(g.sizeDeltaBytes)),
            h('td', {}, h('code', { class: 'retainer-path' }, g.retainerPath ?? 'no path from a GC root')),
          ),
        ),
      ),
    ),
  );
  return el;
}

function processLine(p: ProcessRef): HTMLElement {
  return h('li', {}, h('strong', {}, `${p.comm} `), h('span', { class: 'muted' }, `pid ${p.pid} `), h('code', { class: 'cmdline' }, p.cmdline));
}

function details(f: Finding): HTMLElement {
  switch (f.kind) {
    case 'growth': {
      const d = f.details;
      return facts([
        ['scope', d.scope],
        ['slope', `${formatBytes(d.slopeBytesPerSec)}/s`],
        ['current', formatBytes(d.currentBytes)],
        ['working set', formatBytes(d.workingSetBytes)],
        ['limit', formatBytes(d.limitBytes)],
        ['ETA to OOM', formatDuration(etaRemainingSec(d, f.updatedAt, Date.now()))],
        ['confidence', d.confidence.toFixed(2)],
        ['window', `${dateTime(d.windowStartMs)} → ${dateTime(d.windowEndMs)}`],
      ]);
    }
    case 'fanout': {
      const d = f.details;
      return h(
        'div',
        {},
        facts([
          ['children alive / seen', `${d.childrenAlive} / ${d.childrenSeen}`],
          ['spawn rate', `${d.spawnRatePerMin.toFixed(1)} per minute`],
          ["children's memory", formatBytes(d.childrenAnonBytes)],
          ["children's slope", d.childrenSlopeBytesPerSec === null ? '—' : `${formatBytes(d.childrenSlopeBytesPerSec)}/s`],
          ['growing children', String(d.growingChildren)],
          ['limit', formatBytes(d.limitBytes)],
        ]),
        h('h4', {}, 'Parent'),
        h('ul', { class: 'procs' }, processLine(d.parent)),
        h('h4', {}, 'Some children'),
        h('ul', { class: 'procs' }, ...d.sampleChildren.map(processLine)),
      );
    }
    case 'oom-kill': {
      const d = f.details;
      return facts([
        ['victim', `${d.victim.comm ?? '?'} (pid ${d.victim.pid ?? '?'})`],
        ['command line', d.victim.cmdline ? h('code', { class: 'cmdline' }, d.victim.cmdline) : '—'],
        ['last anon RSS', formatBytes(d.victim.lastRssAnonBytes)],
        ['memory cgroup', d.memcg],
        ['container survived', d.containerSurvived === null ? 'unknown' : d.containerSurvived ? 'yes — Kubernetes reports nothing' : 'no'],
        ['seen by', d.sources.join(', ')],
      ]);
    }
    case 'suspicious-spawn':
      return spawnEvidence(f);
  }
}

function spawnEvidence(f: Finding & { kind: 'suspicious-spawn' }): HTMLElement {
  const d = f.details;
  const el = h('div', { class: 'evidence', 'data-testid': 'spawn-evidence' });
  el.append(
    h('h4', {}, 'Rules matched'),
    h('ul', { class: 'rules', 'data-testid': 'spawn-rules' }, ...d.rules.map((r) => h('li', {}, h('code', {}, r.id), ' — ', r.reason))),
    facts([
      ['command line', h('code', { class: 'cmdline', 'data-testid': 'spawn-argv' }, d.argv.join(' '))],
      ['executable', d.exe],
      ['working directory', d.cwd],
      ['uid', String(d.uid)],
      ['started', dateTime(d.startTimeMs)],
      ['occurrences', `${d.occurrences} (recent pids ${d.pids.join(', ')})`],
    ]),
    h('h4', {}, 'Parent chain'),
    h('ol', { class: 'procs', 'data-testid': 'parent-chain' }, ...d.parentChain.map(processLine)),
  );
  if (d.provenance) {
    el.append(
      h('h4', {}, 'Provenance'),
      h('p', { class: 'provenance', 'data-testid': 'provenance' }, d.provenance.statement),
      facts([
        ['source', d.provenance.path],
        ['source sha256', h('code', { class: 'hash' }, d.provenance.sha256)],
        ['encoding', d.provenance.encoding],
      ]),
    );
  }
  const s = d.script;
  el.append(h('h4', {}, 'Script'));
  if (!s) {
    el.append(h('p', { class: 'muted' }, 'no script file was involved'));
  } else {
    el.append(
      facts([
        ['path', h('code', {}, s.path)],
        ['sha256', s.sha256 ? h('code', { class: 'hash', 'data-testid': 'script-sha256' }, s.sha256) : '—'],
        ['size', formatBytes(s.sizeBytes)],
        ['modified', s.mtimeMs === null ? '—' : dateTime(s.mtimeMs)],
        ['changed', s.ctimeMs === null ? '—' : dateTime(s.ctimeMs)],
        ['not read because', s.refused],
      ]),
    );
    if (s.content !== null) {
      el.append(
        h('p', { class: 'muted small' }, `Content as captured${s.contentEncoding === 'base64' ? ' (binary, shown as base64)' : ''}${s.truncated ? ', truncated' : ''}. Shown as text: never run.`),
        // textContent only: a script is data here.
        h('pre', { class: 'script', 'data-testid': 'script-content' }, s.content),
      );
    }
  }
  if (d.notes.length > 0) el.append(h('h4', {}, 'Notes'), h('ul', {}, ...d.notes.map((n) => h('li', {}, n))));
  return el;
}

export function findingView(id: string): View {
  const el = h('section', { class: 'finding' });
  const status = h('p', { class: 'muted' }, 'loading…');
  el.append(status);
  let disposed = false;
  const render = (f: FindingWithDiff): void => {
    const t = f.target;
    el.replaceChildren(
      h('h2', { 'data-testid': 'finding-title' }, h('span', { class: `badge kind-${f.kind}` }, f.kind), ' ', f.summary),
      facts([
        ['status', f.status],
        ['first seen', dateTime(f.at)],
        ['updated', dateTime(f.updatedAt)],
        ['node', f.node],
        ['pod', t.pod ? h('a', { href: podHref(f.node, t.namespace ?? '', t.pod) }, `${t.namespace}/${t.pod}`) : '—'],
        ['container', t.container],
        ['process', t.pid === null ? '—' : `${t.comm ?? '?'} (pid ${t.pid})`],
        ['command line', t.cmdline ? h('code', { class: 'cmdline', 'data-testid': 'target-cmdline' }, t.cmdline) : '—'],
      ]),
      details(f),
    );
    if (f.heapDiff) el.append(heapDiffSection(f.heapDiff));
  };
  const chartLinks = async (f: Finding): Promise<void> => {
    if (!f.target.pod) return;
    const q = `node=${encodeURIComponent(f.node)}&namespace=${encodeURIComponent(f.target.namespace ?? '')}&pod=${encodeURIComponent(f.target.pod)}`;
    const { targets } = await apiGet<{ targets: TargetRow[] }>(`/api/v1/targets?${q}`);
    const charted = targets.filter((t) => findingMatchesTarget(f, t));
    if (disposed || charted.length === 0) return;
    el.querySelector('h2')?.after(
      h('p', { 'data-testid': 'chart-links' }, 'memory chart: ', ...charted.map((t) => h('a', { href: targetHref(t.node, t.targetKey) }, t.kind === 'container' ? `container ${t.container ?? ''} ` : `pid ${t.pid} `))),
    );
  };
  let diffPoll: ReturnType<typeof setTimeout> | null = null;
  const load = (): Promise<void> =>
    apiGet<FindingWithDiff>(`/api/v1/findings/${encodeURIComponent(id)}`).then((f) => {
      if (disposed) return;
      render(f);
      chartLinks(f).catch(() => {});
      // A diff in progress sends no live event when it finishes: ask again until it has.
      if (diffPoll) clearTimeout(diffPoll);
      diffPoll = f.heapDiff && (f.heapDiff.status === 'pending' || f.heapDiff.status === 'running') ? setTimeout(() => void load().catch(() => {}), 3000) : null;
    });
  load().catch((err: Error) => (status.textContent = `could not load: ${err.message}`));
  const off = onLive((m) => {
    if (m.type === 'findings' && m.events.some((e) => e.finding.id === id)) load().catch(() => {});
  });
  return {
    el,
    dispose() {
      disposed = true;
      if (diffPoll) clearTimeout(diffPoll);
      off();
    },
  };
}
