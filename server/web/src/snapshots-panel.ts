// Heap snapshots of a target (GET /api/v1/snapshots), every capture attempt with the reasons of
// refusals (GET /api/v1/captures), downloads (fetched with the token, handed over as a blob) and
// "take snapshot" for tokens with the `snapshots` scope. Shapes are those of
// server/snapshots/snapshot-api.ts; an older collector without those routes says so instead of failing.
import { ApiError, apiGet, apiPost, download } from './api.js';
import { can } from './app-state.js';
import { dateTime, h } from './dom.js';
import { formatBytes } from './model.js';
import type { CaptureReport, SnapshotRow, TargetRow } from './wire.js';

export function snapshotsPanel(t: TargetRow): { el: HTMLElement; dispose(): void } {
  const el = h('section', { class: 'snapshots', 'data-testid': 'snapshots-panel' });
  const list = h('div');
  const captures = h('div');
  const message = h('p', { class: 'muted', 'data-testid': 'snapshot-message' });
  const takeButton = h('button', { type: 'button', 'data-testid': 'take-snapshot' }, 'Take heap snapshot');
  // POST /api/v1/snapshots needs both namespace and pod: without them there is nothing to ask for.
  const inPod = t.pod !== null && t.namespace !== null;
  el.append(h('h3', {}, 'Heap snapshots'), can('snapshots') && inPod ? takeButton : h('p', { class: 'muted small' }, inPod ? 'Taking and downloading snapshots needs a token with the "snapshots" scope.' : 'Snapshots are taken of processes in pods.'), message, list, h('h4', {}, 'Capture attempts'), captures);

  const filter = (): string => {
    const q = new URLSearchParams();
    if (t.kind === 'process') q.set('targetKey', t.targetKey);
    else {
      if (t.namespace) q.set('namespace', t.namespace);
      if (t.pod) q.set('pod', t.pod);
    }
    return q.toString();
  };

  const load = async (): Promise<void> => {
    let snaps: SnapshotRow[];
    let caps: CaptureReport[];
    try {
      const pod = new URLSearchParams();
      if (t.namespace) pod.set('namespace', t.namespace);
      if (t.pod) pod.set('pod', t.pod);
      [snaps, caps] = await Promise.all([
        apiGet<{ snapshots: SnapshotRow[] }>(`/api/v1/snapshots?${filter()}`).then((r) => r.snapshots),
        apiGet<{ captures: CaptureReport[] }>(`/api/v1/captures?${t.kind === 'process' ? `targetKey=${encodeURIComponent(t.targetKey)}` : pod.toString()}&limit=50`).then((r) => r.captures),
      ]);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && err.code === 'not-found') {
        list.replaceChildren(h('p', { class: 'muted' }, 'This collector does not serve heap snapshots.'));
        takeButton.disabled = true;
        return;
      }
      throw err;
    }
    const table = h('table', { class: 'snapshots-table', 'data-testid': 'snapshots-table' }, h('thead', {}, h('tr', {}, ...['taken', 'kind', 'process', 'size', 'trigger', 'sha256', ''].map((c) => h('th', {}, c)))));
    const body = h('tbody');
    for (const s of snaps) {
      const button = can('snapshots')
        ? h('button', {
            type: 'button',
            class: 'small',
            onclick: () => {
              message.textContent = `downloading ${s.snapshotId}…`;
              download(`/api/v1/snapshots/${s.snapshotId}/download`, `${s.pod ?? 'snapshot'}-${s.pid}-${s.snapshotId}.${s.kind}`)
                .then((r) => (message.textContent = `downloaded ${formatBytes(r.bytes)}${r.sha256 && r.sha256 !== s.sha256 ? ' — sha256 DIFFERS from the listing' : ''}`))
                .catch((err: Error) => (message.textContent = `download failed: ${err.message}`));
            },
          }, 'download')
        : '';
      body.append(
        h(
          'tr',
          { 'data-testid': 'snapshot-row' },
          h('td', {}, dateTime(s.takenAtMs)),
          h('td', {}, s.kind),
          h('td', {}, `${s.comm ?? '?'} (pid ${s.pid})`),
          h('td', {}, formatBytes(s.bytes)),
          h('td', {}, s.trigger === 'growth' && s.findingId ? `growth finding ${s.findingId}` : s.trigger),
          h('td', {}, h('code', { class: 'hash' }, s.sha256)),
          h('td', {}, button),
        ),
      );
    }
    if (snaps.length === 0) body.append(h('tr', {}, h('td', { colspan: '7', class: 'muted' }, 'no snapshots stored for this target')));
    table.append(body);
    list.replaceChildren(table);
    captures.replaceChildren(
      caps.length === 0
        ? h('p', { class: 'muted' }, 'none')
        : h(
            'ul',
            { class: 'captures', 'data-testid': 'captures' },
            ...caps.map((c) =>
              h('li', { class: `outcome-${c.outcome}` }, `${dateTime(c.atMs)} · ${c.requested} · ${c.outcome}`, c.reason ? h('span', { 'data-testid': 'capture-reason' }, ` — ${c.reason}`) : '', c.reasonCode ? h('code', { class: 'small' }, ` ${c.reasonCode}`) : ''),
            ),
          ),
    );
  };

  takeButton.addEventListener('click', () => {
    if (!t.pod || !t.namespace) return;
    takeButton.disabled = true;
    message.textContent = 'asking the agent for a heap snapshot… (the target pauses while it is written)';
    const body: Record<string, unknown> = { namespace: t.namespace, pod: t.pod };
    if (t.container) body.container = t.container;
    if (t.kind === 'process' && t.pid !== null) body.pid = t.pid;
    apiPost<{ capture?: CaptureReport; snapshots?: SnapshotRow[]; message?: string }>('/api/v1/snapshots', body)
      .then(({ status, body: r }) => {
        if (status === 504) message.textContent = `timed out waiting: ${r.message ?? 'the capture may still arrive'}`;
        else if (r.capture?.outcome === 'refused' || r.capture?.outcome === 'failed') message.textContent = `${r.capture.outcome}: ${r.capture.reason ?? r.capture.reasonCode ?? 'no reason given'}`;
        else message.textContent = `${r.capture?.outcome ?? 'done'}: ${r.snapshots?.length ?? 0} snapshot(s) stored`;
        return load();
      })
      .catch((err: Error) => (message.textContent = `could not take a snapshot: ${err.message}`))
      .finally(() => (takeButton.disabled = false));
  });

  load().catch((err: Error) => (message.textContent = `could not list snapshots: ${err.message}`));
  return { el, dispose() {} };
}
