// A pod's processes as a tree: the fan-out parent highlighted, its children, the ones the kernel
// OOM-killed, and the processes that ran suspicious scripts, each linking to its findings.
import { apiGet } from './api.js';
import { onLive, type View } from './app-state.js';
import { h } from './dom.js';
import { buildProcessTree, type TreeNode } from './model.js';
import { findingHref, targetHref } from './routes.js';
import type { Finding, TargetRow } from './wire.js';

function renderNode(n: TreeNode, node: string, targets: TargetRow[]): HTMLElement {
  const classes = ['proc', n.fanoutParent ? 'fanout-parent' : '', n.fanoutChild ? 'fanout-child' : '', n.oomKilled ? 'oom-killed' : '', n.suspicious ? 'suspicious' : ''].filter(Boolean).join(' ');
  const target = targets.find((t) => t.kind === 'process' && t.pid === n.pid);
  const tags = [n.fanoutParent ? 'fan-out parent' : '', n.oomKilled ? 'OOM-killed' : '', n.suspicious ? 'suspicious spawn' : '', n.parentInferred ? 'parent inferred' : ''].filter(Boolean);
  return h(
    'li',
    { class: classes, 'data-testid': 'tree-node', 'data-pid': String(n.pid) },
    h('span', { class: 'pid' }, String(n.pid)),
    ' ',
    h('strong', {}, n.comm),
    ' ',
    h('code', { class: 'cmdline' }, n.cmdline),
    ...tags.map((t) => h('span', { class: `tag tag-${t.replace(/\W+/g, '-').toLowerCase()}` }, t)),
    target ? h('a', { class: 'small', href: targetHref(node, target.targetKey) }, ' chart') : '',
    ...n.findingIds.map((id) => h('a', { class: 'small', href: findingHref(id) }, ' finding')),
    n.children.length > 0 ? h('ul', {}, ...n.children.map((c) => renderNode(c, node, targets))) : '',
  );
}

export function treeView(node: string, namespace: string, pod: string): View {
  const el = h('section', { class: 'tree' });
  const status = h('p', { class: 'muted' }, 'loading…');
  const body = h('div', { 'data-testid': 'process-tree' });
  el.append(h('h2', {}, `Processes of ${namespace}/${pod}`), h('p', { class: 'muted small' }, 'Built from what the agent reported: fan-out parents and their children, spawn parent chains, OOM-kill victims and the processes it trends.'), status, body);
  let disposed = false;
  const load = async (): Promise<void> => {
    const q = `node=${encodeURIComponent(node)}&namespace=${encodeURIComponent(namespace)}&pod=${encodeURIComponent(pod)}`;
    const [targets, findings] = await Promise.all([apiGet<{ targets: TargetRow[] }>(`/api/v1/targets?${q}`), apiGet<{ findings: Finding[] }>(`/api/v1/findings?${q}&limit=2000`)]);
    if (disposed) return;
    const roots = buildProcessTree(findings.findings, targets.targets.filter((t) => t.kind === 'process'));
    const containers = targets.targets.filter((t) => t.kind === 'container');
    body.replaceChildren(
      containers.length > 0 ? h('p', {}, 'containers: ', ...containers.map((c) => h('a', { href: targetHref(node, c.targetKey) }, `${c.container ?? c.targetKey} `))) : '',
      roots.length > 0 ? h('ul', { class: 'proc-tree' }, ...roots.map((r) => renderNode(r, node, targets.targets))) : h('p', { class: 'muted' }, 'no processes reported for this pod'),
    );
    status.textContent = `${findings.findings.length} findings · ${targets.targets.length} tracked targets`;
  };
  load().catch((err: Error) => (status.textContent = `could not load: ${err.message}`));
  const off = onLive((m) => {
    if (m.type === 'findings' && m.node === node && m.events.some((e) => e.finding.target.pod === pod)) load().catch(() => {});
  });
  return {
    el,
    dispose() {
      disposed = true;
      off();
    },
  };
}
