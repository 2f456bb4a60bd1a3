import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PodNameIndex, parsePodDirName } from '../../../agent/host/pod-names.js';

const fixture = fileURLToPath(new URL('../../fixtures/pod-logs/', import.meta.url));
const podLogRoot = join(fixture, 'pods');

const WEB = 'd04fe68c-27f4-4e2d-ac19-f5cbb35f1ff3';
const APP_ID = '6b3d38e433987125d25e7c1b8ca8c7eeb64cf67ae7e8d7be2dc7b5787827bc71';
const SHIPPER_ID = 'dd1f754358e60011fcefe5fa2b1e82bae4eec16e84a9e122ce834b4993aff235';

function scratchCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'leakwatch-podlogs-'));
  cpSync(fixture, dir, { recursive: true, verbatimSymlinks: true });
  return dir;
}

test('parsePodDirName: namespace before the first _, uid after the last', () => {
  assert.deepEqual(parsePodDirName(`default_web-7d8f9c4b2f-abc12_${WEB}`), { namespace: 'default', pod: 'web-7d8f9c4b2f-abc12', podUid: WEB });
  assert.deepEqual(parsePodDirName('kube-system_etcd-node-1_8daa50c3a64c9ff60bb9eab7b44b56fd'), {
    namespace: 'kube-system',
    pod: 'etcd-node-1',
    podUid: '8daa50c3a64c9ff60bb9eab7b44b56fd',
  });
  for (const bad of [WEB, `default_${WEB}`, `_web_${WEB}`, `default__${WEB}`, 'default_web_', 'default_web_not-a-uid', '']) {
    assert.equal(parsePodDirName(bad), null, bad);
  }
});

test('names, containers and container ids from the fixture tree', () => {
  const index = new PodNameIndex({ podLogRoot });
  const web = index.lookup(WEB);
  assert.ok(web);
  assert.equal(web.namespace, 'default');
  assert.equal(web.pod, 'web-7d8f9c4b2f-abc12');
  assert.equal(web.podUid, WEB);
  assert.deepEqual(web.containers, ['app', 'log-shipper', 'migrate']);
  assert.deepEqual(
    new Map([...web.containerNamesById].sort()),
    new Map([
      [APP_ID, 'app'],
      [SHIPPER_ID, 'log-shipper'],
    ]),
  );
  assert.equal(index.containerName(WEB, APP_ID), 'app');
  assert.equal(index.containerName(WEB, SHIPPER_ID), 'log-shipper');
  // Several containers and no symlink for this id: no guess.
  assert.equal(index.containerName(WEB, 'f'.repeat(64)), null);
});

test('one container directory names the container even without a symlink', () => {
  const index = new PodNameIndex({ podLogRoot });
  const uid = '76e89285-1d33-4603-bcc9-3511dc81eb4c';
  assert.equal(index.lookup(uid)?.pod, 'payment-processor-7d8f9c4b2f-def34');
  assert.equal(index.lookup(uid)?.containerNamesById.size, 0);
  assert.equal(index.containerName(uid, '58e6338d9a3011aa85882c12c6630e302cda30918f4f850a2f10216ddaae2fe5'), 'payment-processor');
});

test('two pods of one name (StatefulSet replacement): ids go to the pod the symlink points at', () => {
  const index = new PodNameIndex({ podLogRoot });
  const oldPod = index.lookup('3c1f0a52-9d7e-4b8a-a1f3-5e2d7c9b4a10');
  const newPod = index.lookup('13f5c406-d825-48da-880c-baece02e915e');
  assert.deepEqual([...oldPod!.containerNamesById.keys()], ['7f3e2d1c0b9a8f7e6d5c4b3a29181706f5e4d3c2b1a0f9e8d7c6b5a493827160']);
  assert.deepEqual([...newPod!.containerNamesById.keys()], ['1bc688d6354788768a5b0da5e67a3a3d6829d5fe4fc188096758d233121059ff']);
});

test('static pod UID, upper-case lookups; legacy, stray and unknown entries are skipped', () => {
  const index = new PodNameIndex({ podLogRoot });
  assert.equal(index.lookup('8daa50c3a64c9ff60bb9eab7b44b56fd')?.pod, 'etcd-node-1');
  assert.equal(index.lookup(WEB.toUpperCase())?.pod, 'web-7d8f9c4b2f-abc12');
  assert.equal(index.lookup('0b9d1e8a-55c2-4f3e-9a7b-2c4d6e8f0a1b'), null); // pre-1.14 <uid>-only dir
  assert.equal(index.lookup('5e0c7a91-2b4d-4f6e-8a1c-3d5f7b9e1a2c'), null); // a file, not a directory
  assert.equal(index.lookup('00000000-0000-4000-8000-000000000000'), null);
});

test('rescans at most every rescanIntervalMs: a new pod appears after the interval', () => {
  const root = scratchCopy();
  try {
    let now = 1_000_000;
    const index = new PodNameIndex({ podLogRoot: join(root, 'pods'), rescanIntervalMs: 5_000, now: () => now });
    const uid = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
    assert.equal(index.lookup(uid), null);
    mkdirSync(join(root, 'pods', `shop_cart-5f6d_${uid}`, 'cart'), { recursive: true });
    now += 4_999;
    assert.equal(index.lookup(uid), null, 'not re-scanned before the interval');
    now += 1;
    assert.equal(index.lookup(uid)?.pod, 'cart-5f6d');
    assert.deepEqual(index.lookup(uid)?.containers, ['cart']);
    // A deleted pod disappears on the next scan, too.
    rmSync(join(root, 'pods', `shop_cart-5f6d_${uid}`), { recursive: true });
    now += 5_000;
    assert.equal(index.lookup(uid), null);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('symlink without a readable target: the unique namespace/pod decides, an ambiguous one does not', () => {
  const root = scratchCopy();
  try {
    const containers = join(root, 'containers');
    const webId = 'a'.repeat(64);
    const pgId = 'b'.repeat(64);
    // Plain files instead of symlinks: readlink fails.
    writeFileSync(join(containers, `web-7d8f9c4b2f-abc12_default_app-${webId}.log`), '');
    writeFileSync(join(containers, `postgres-0_db_postgres-${pgId}.log`), '');
    const index = new PodNameIndex({ podLogRoot: join(root, 'pods') });
    assert.equal(index.lookup(WEB)?.containerNamesById.get(webId), 'app');
    assert.equal(index.lookup('3c1f0a52-9d7e-4b8a-a1f3-5e2d7c9b4a10')?.containerNamesById.has(pgId), false);
    assert.equal(index.lookup('13f5c406-d825-48da-880c-baece02e915e')?.containerNamesById.has(pgId), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('symlink whose target names a pod of another name is not trusted over the link name', () => {
  const root = scratchCopy();
  try {
    const id = 'c'.repeat(64);
    symlinkSync(`/var/log/pods/kube-system_kube-proxy-x7k2p_8ab7cc1b-c45a-46fd-9f97-6a1770fa78c0/kube-proxy/0.log`, join(root, 'containers', `web-7d8f9c4b2f-abc12_default_app-${id}.log`));
    const index = new PodNameIndex({ podLogRoot: join(root, 'pods') });
    assert.equal(index.lookup('8ab7cc1b-c45a-46fd-9f97-6a1770fa78c0')?.containerNamesById.has(id), false);
    assert.equal(index.lookup(WEB)?.containerNamesById.get(id), 'app'); // by the unique name instead
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('container-log directory optional: null disables it, a missing one is said once', () => {
  const noLinks = new PodNameIndex({ podLogRoot, containerLogDir: null });
  assert.equal(noLinks.lookup(WEB)?.containerNamesById.size, 0);
  assert.deepEqual(noLinks.lookup(WEB)?.containers, ['app', 'log-shipper', 'migrate']);

  const warnings: string[] = [];
  let now = 0;
  const missing = new PodNameIndex({ podLogRoot, containerLogDir: join(fixture, 'nope'), rescanIntervalMs: 1, now: () => now, warn: (m) => warnings.push(m) });
  for (let i = 0; i < 3; i++, now += 10) assert.equal(missing.lookup(WEB)?.pod, 'web-7d8f9c4b2f-abc12');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /nope cannot be read \(ENOENT\)/);
});

test('missing pod log root: null lookups, said once until it changes, no throw', () => {
  const warnings: string[] = [];
  let now = 0;
  const root = mkdtempSync(join(tmpdir(), 'leakwatch-podlogs-'));
  try {
    const index = new PodNameIndex({ podLogRoot: join(root, 'pods'), containerLogDir: null, rescanIntervalMs: 1, now: () => now, warn: (m) => warnings.push(m) });
    for (let i = 0; i < 3; i++, now += 10) assert.equal(index.lookup(WEB), null);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /pods cannot be read \(ENOENT\): pods will have no names/);
    // It appears: names come back, and the next failure is said again.
    mkdirSync(join(root, 'pods', `default_web-1_${WEB}`, 'web'), { recursive: true });
    now += 10;
    assert.equal(index.lookup(WEB)?.pod, 'web-1');
    rmSync(join(root, 'pods'), { recursive: true });
    writeFileSync(join(root, 'pods'), 'not a directory');
    now += 10;
    assert.equal(index.lookup(WEB), null);
    assert.equal(warnings.length, 2);
    assert.match(warnings[1]!, /ENOTDIR/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
