// The probe paths in daemonset.yaml are really served: the collector and the agent started from
// the CLI with the manifest's args (listen addresses moved to free loopback ports, places to temp
// dirs), the collector as the manifest's non-root user with its tokens file readable only the
// way the Secret mount makes it. Also the image's HEALTHCHECK script against both.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot, runCli } from '../support/cli.js';
import { expandArgs, find, flagValue, loadManifest, podSpec, withFlag } from '../support/manifest.js';
import { freePort } from '../support/net.js';

const docs = loadManifest();
const collectorPod = podSpec(find(docs, 'Deployment', 'leakwatch-collector'));
const collectorContainer = collectorPod.containers[0]!;
const agentContainer = podSpec(find(docs, 'DaemonSet', 'leakwatch-agent')).containers[0]!;
const cliEntry = join(repoRoot, 'cli/main.ts');
const collectorUid = collectorPod.securityContext?.runAsUser ?? 0;
const collectorGid = collectorPod.securityContext?.fsGroup ?? 0;

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LEAKWATCH_')) env[k] = v;
  return { ...env, ...extra };
}

/** Null when `uid` can read this checkout and run tsx from it; else why not. */
function unreadableBy(uid: number): string | null {
  if (process.getuid?.() !== 0) return 'not root (cannot run as another user)';
  const r = spawnSync('/bin/sh', ['-c', 'test -r "$0/package.json" && test -x "$0/node_modules" && test -r "$0/cli/main.ts"', repoRoot], { uid, gid: uid });
  return r.status === 0 ? null : `uid ${uid} cannot read this checkout (${repoRoot} or a parent is private)`;
}

async function status(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  await res.arrayBuffer();
  return res.status;
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs: number, log: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stderr:\n${log().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function healthcheck(url: string): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [join(repoRoot, 'scripts/healthcheck.mjs')], { env: cleanEnv({ LEAKWATCH_HEALTHCHECK_URL: url }), encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, stderr: r.stderr };
}

function start(args: string[], options: { uid?: number; gid?: number; env?: Record<string, string> }): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', cliEntry, ...args], {
    cwd: repoRoot,
    env: cleanEnv(options.env),
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(options.uid !== undefined ? { uid: options.uid, gid: options.gid ?? options.uid } : {}),
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stderr: () => stderr, exited };
}

describe('probe paths served by the real collector and agent', () => {
  let work: string;
  const children: ChildProcess[] = [];
  let collectorBase = '';
  let agentToken = '';
  let collectorLog: () => string = () => '';
  let collectorExited: Promise<number | null>;
  let collectorChild: ChildProcess;
  const asUser = unreadableBy(collectorUid);

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'leakwatch-probes-'));
    chmodSync(work, 0o755);
    // The tokens file as the Secret mount gives it: group fsGroup, mode 0440.
    const tokensDir = join(work, 'tokens');
    mkdirSync(tokensDir, { mode: 0o755 });
    const tokensFile = join(tokensDir, 'tokens.json');
    const created = runCli(['tokens', 'create', '--name', 'agents', '--scopes', 'agent', '--tokens-file', tokensFile], { env: cleanEnv() });
    assert.equal(created.status, 0, created.stderr);
    agentToken = created.stdout.trim();
    // The PVC as the kubelet mounts it with fsGroup: root-owned, group fsGroup, setgid, and (ext4)
    // a lost+found only root can read. The collector must not need to own it.
    const dataMount = collectorContainer.volumeMounts!.find((m) => collectorPod.volumes!.find((v) => v.name === m.name)?.persistentVolumeClaim)!;
    const volumeRoot = join(work, 'pvc');
    mkdirSync(volumeRoot);
    mkdirSync(join(volumeRoot, 'lost+found'), { mode: 0o700 });
    if (!asUser) {
      chownSync(tokensFile, 0, collectorGid);
      chmodSync(tokensFile, 0o440);
      chownSync(volumeRoot, 0, collectorGid);
    }
    chmodSync(volumeRoot, 0o2770);
    const dataDir = flagValue(expandArgs(collectorContainer, {}), '--data-dir')!.replace(dataMount.mountPath, volumeRoot);
    const port = await freePort();
    let args = expandArgs(collectorContainer, {});
    args = withFlag(args, '--listen', `127.0.0.1:${port}`);
    args = withFlag(args, '--data-dir', dataDir);
    args = withFlag(args, '--tokens-file', tokensFile);
    const run = start(args, asUser ? {} : { uid: collectorUid, gid: collectorGid });
    children.push(run.child);
    collectorChild = run.child;
    collectorLog = run.stderr;
    collectorExited = run.exited;
    collectorBase = `http://127.0.0.1:${port}`;
  });

  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it(`the collector${asUser ? ` (as root: ${asUser})` : ` as uid ${collectorUid}`}: liveness and readiness paths answer 200, and the image's HEALTHCHECK passes`, async (t) => {
    if (asUser) t.diagnostic(`SKIP part: running the collector as root, not uid ${collectorUid}: ${asUser}`);
    const live = collectorContainer.livenessProbe!.httpGet!.path;
    const ready = collectorContainer.readinessProbe!.httpGet!.path;
    await until('collector readiness', async () => (await status(`${collectorBase}${ready}`)) === 200, 30_000, collectorLog);
    assert.equal(await status(`${collectorBase}${live}`), 200);
    assert.equal(await status(`${collectorBase}/api/v1/findings`), 401, 'everything else needs a token');
    assert.deepEqual(healthcheck(`${collectorBase}/healthz`), { status: 0, stderr: '' });
  });

  it('the agent: liveness and readiness paths answer 200 once it has sampled, and the HEALTHCHECK with its URL passes', async () => {
    const port = await freePort();
    const tokenFile = join(work, 'agent-token');
    writeFileSync(tokenFile, `${agentToken}\n`, { mode: 0o600 });
    // The node's own trees here (the mount layout is agent-node-layout.test.ts's subject).
    let args = expandArgs(agentContainer, { 'spec.nodeName': 'node-probes', 'status.podIP': '127.0.0.1' }).map((a) => a.replace(/=\/host\//, '=/'));
    args = withFlag(args, '--collector', collectorBase);
    args = withFlag(args, '--token-file', tokenFile);
    args = withFlag(args, '--spool-dir', join(work, 'spool'));
    args = withFlag(args, '--metrics-listen', `127.0.0.1:${port}`);
    const run = start(args, { env: { NODE_NAME: 'node-probes' } });
    children.push(run.child);
    const base = `http://127.0.0.1:${port}`;
    await until('agent readiness', async () => (await status(`${base}${agentContainer.readinessProbe!.httpGet!.path}`)) === 200, 30_000, run.stderr);
    assert.equal(await status(`${base}${agentContainer.livenessProbe!.httpGet!.path}`), 200);
    assert.deepEqual(healthcheck(`${base}/healthz`), { status: 0, stderr: '' });
    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 0, run.stderr());
  });

  it('the HEALTHCHECK fails, in one line, when nothing answers or the answer is not 2xx', async () => {
    const closed = await freePort();
    const down = healthcheck(`http://127.0.0.1:${closed}/healthz`);
    assert.equal(down.status, 1);
    assert.match(down.stderr, /^healthcheck: http:\/\/127\.0\.0\.1:\d+\/healthz: .+\n$/);
    const notFound = healthcheck(`${collectorBase}/no-such-path`);
    assert.deepEqual(notFound, { status: 1, stderr: `healthcheck: ${collectorBase}/no-such-path answered 404\n` });
  });

  it('the collector stops cleanly on SIGTERM (the pod is deleted)', async () => {
    collectorChild.kill('SIGTERM');
    assert.equal(await collectorExited, 0, collectorLog());
    assert.doesNotMatch(collectorLog(), /"level":"error"/);
  });
});
