// What a security reviewer checks in daemonset.yaml, as tests: host access only where needed and
// read-only, no privileged container, capabilities exactly the documented list (manifest, its
// comments, deploy/capabilities.json and the README agree), limits and probes everywhere, args
// that leakwatch's own parser accepts, and wiring that matches (ports, secrets, selectors).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { isMap, isSeq, isScalar, type YAMLMap, type YAMLSeq } from 'yaml';
import { repoRoot } from '../support/cli.js';
import { parseWithProgram } from '../support/cli-parse.js';
import {
  documentedCapabilities,
  expandArgs,
  find,
  flagValue,
  kindAndName,
  loadManifest,
  manifestPath,
  podSpec,
  quantity,
  workloads,
  type Container,
} from '../support/manifest.js';

const docs = loadManifest();
const agentDoc = find(docs, 'DaemonSet', 'leakwatch-agent');
const collectorDoc = find(docs, 'Deployment', 'leakwatch-collector');
const agentPod = podSpec(agentDoc);
const collectorPod = podSpec(collectorDoc);
const agent = agentPod.containers[0]!;
const collector = collectorPod.containers[0]!;
const fieldValues = { 'spec.nodeName': 'node-a', 'status.podIP': '10.1.2.3' };
const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
const GiB = 1024 ** 3;

function allContainers(): Array<{ where: string; c: Container }> {
  return workloads(docs).flatMap((d) => {
    const spec = podSpec(d);
    return [...(spec.initContainers ?? []), ...spec.containers].map((c) => ({ where: `${kindAndName(d.object)} ${c.name}`, c }));
  });
}

/** The argv the image's entrypoint hands the CLI: the DaemonSet's command ends in main.js, then args. */
function cliArgv(c: Container): string[] {
  if (c.command) {
    const i = c.command.indexOf('/app/dist/cli/main.js');
    assert.ok(i >= 0 && i === c.command.length - 1, `${c.name}: the command ends with the CLI entry point (${c.command.join(' ')})`);
  }
  return expandArgs(c, fieldValues);
}

describe('host access', () => {
  it('hostPID only on the agent; hostNetwork and hostIPC nowhere', () => {
    for (const d of workloads(docs)) {
      const spec = podSpec(d);
      assert.equal(spec.hostPID === true, d === agentDoc, `${kindAndName(d.object)} hostPID`);
      assert.notEqual(spec.hostNetwork, true, `${kindAndName(d.object)} hostNetwork`);
      assert.notEqual(spec.hostIPC, true, `${kindAndName(d.object)} hostIPC`);
    }
  });

  it('every hostPath volume is mounted read-only, and they are exactly the node trees the agent reads', () => {
    const hostPaths = new Map<string, string>();
    for (const d of workloads(docs)) {
      const spec = podSpec(d);
      const hostVolumes = new Map((spec.volumes ?? []).filter((v) => v.hostPath).map((v) => [v.name, v.hostPath!.path]));
      if (d !== agentDoc) assert.equal(hostVolumes.size, 0, `${kindAndName(d.object)} has no hostPath`);
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        for (const m of c.volumeMounts ?? []) {
          const host = hostVolumes.get(m.name);
          if (host === undefined) continue;
          assert.equal(m.readOnly, true, `${c.name}: hostPath ${host} at ${m.mountPath} is read-only`);
          hostPaths.set(host, m.mountPath);
        }
      }
    }
    assert.deepEqual(Object.fromEntries(hostPaths), {
      '/proc': '/host/proc',
      '/sys/fs/cgroup': '/host/sys/fs/cgroup',
      '/var/log/pods': '/host/var/log/pods',
      '/var/log/containers': '/host/var/log/containers',
      '/dev/kmsg': '/dev/kmsg',
    });
  });

  it("the agent's root flags point at those mounts", async () => {
    const parsed = await parseWithProgram(cliArgv(agent));
    assert.equal(parsed.options.procRoot, '/host/proc');
    assert.equal(parsed.options.cgroupRoot, '/host/sys/fs/cgroup');
    assert.equal(parsed.options.podLogRoot, '/host/var/log/pods');
    assert.equal(parsed.options.kmsg, '/dev/kmsg');
    // The command enters the host's cgroup namespace through the mounted host /proc.
    assert.ok(agent.command?.includes('--cgroup=/host/proc/1/ns/cgroup'), agent.command?.join(' '));
  });
});

describe('privileges', () => {
  it('no container is privileged, none may escalate, every root filesystem is read-only', () => {
    assert.doesNotMatch(readFileSync(manifestPath, 'utf8'), /^\s*privileged:\s*true/m);
    for (const { where, c } of allContainers()) {
      assert.notEqual(c.securityContext?.privileged, true, where);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, where);
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, where);
      assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], `${where} drops ALL`);
    }
  });

  it('seccomp RuntimeDefault everywhere; AppArmor unconfined only on the agent, and the README says why', () => {
    for (const d of workloads(docs)) {
      const spec = podSpec(d) as unknown as { securityContext?: { seccompProfile?: { type: string } }; containers: Array<{ securityContext?: { appArmorProfile?: { type: string }; seccompProfile?: unknown } }> };
      assert.equal(spec.securityContext?.seccompProfile?.type, 'RuntimeDefault', kindAndName(d.object));
      for (const c of spec.containers) {
        assert.equal(c.securityContext?.seccompProfile, undefined, 'no container overrides the pod seccomp profile');
        const apparmor = c.securityContext?.appArmorProfile?.type;
        if (d === agentDoc) assert.equal(apparmor, 'Unconfined');
        else assert.equal(apparmor, undefined, `${kindAndName(d.object)} keeps the runtime's AppArmor profile`);
      }
    }
    assert.match(readme, /\*\*AppArmor\*\*: the agent container is `appArmorProfile: Unconfined`/);
  });

  it('the collector runs as a non-root user with no capability; the agent as uid 0 (for its capabilities)', () => {
    assert.equal(collectorPod.securityContext?.runAsNonRoot, true);
    assert.ok((collectorPod.securityContext?.runAsUser ?? 0) > 0);
    assert.equal(collector.securityContext?.capabilities?.add, undefined);
    assert.equal(agentPod.securityContext?.runAsUser, 0);
  });

  it("the agent's capabilities are exactly deploy/capabilities.json's, each named without CAP_ and each code path real", () => {
    const documented = documentedCapabilities();
    const added = agent.securityContext?.capabilities?.add ?? [];
    assert.deepEqual([...added].sort(), documented.map((c) => c.name).sort());
    for (const c of documented) {
      assert.match(c.name, /^[A-Z_]+$/);
      assert.ok(!c.name.startsWith('CAP_'), `${c.name}: Kubernetes spells capabilities without CAP_`);
      assert.ok(c.why.length > 40, `${c.name} says why`);
      for (const path of c.code) assert.ok(existsSync(join(repoRoot, path)), `${c.name}: ${path} exists`);
    }
  });

  it('each added capability carries a comment in daemonset.yaml naming the code that needs it', () => {
    const add = agentDoc.document.getIn(['spec', 'template', 'spec', 'containers', 0, 'securityContext', 'capabilities', 'add'], true);
    assert.ok(isSeq(add), 'capabilities.add is a YAML sequence');
    const items = (add as YAMLSeq).items;
    const documented = new Map(documentedCapabilities().map((c) => [c.name, c]));
    // A comment above the first item is attached to the sequence (or its key), not the item.
    const addKey = ((agentDoc.document.getIn(['spec', 'template', 'spec', 'containers', 0, 'securityContext', 'capabilities'], true) as YAMLMap).items.find(
      (p) => isScalar(p.key) && p.key.value === 'add',
    )?.key ?? null) as { commentBefore?: string | null } | null;
    items.forEach((item, i) => {
      assert.ok(isScalar(item));
      const name = String(item.value);
      const comment = `${item.commentBefore ?? ''}${i === 0 ? ` ${(add as YAMLSeq).commentBefore ?? ''} ${addKey?.commentBefore ?? ''}` : ''}`;
      const entry = documented.get(name);
      assert.ok(entry, `${name} is documented`);
      for (const path of entry.code) {
        const mention = path.endsWith('/') ? path : basename(path);
        assert.ok(comment.includes(mention), `the comment above ${name} names ${mention}: ${JSON.stringify(comment)}`);
      }
    });
  });

  it("the README's privilege table lists the same capabilities and code", () => {
    const section = readme.slice(readme.indexOf('### What each privilege is for'), readme.indexOf('### Rotating tokens'));
    assert.ok(section.length > 0, 'README has the privilege section');
    const rows = [...section.matchAll(/^\| `([A-Z_]+)` \| ([^|]+) \|/gm)].map((m) => ({ name: m[1]!, code: m[2]! }));
    assert.deepEqual(rows.map((r) => r.name).sort(), documentedCapabilities().map((c) => c.name).sort());
    for (const c of documentedCapabilities()) {
      const row = rows.find((r) => r.name === c.name)!;
      for (const path of c.code) assert.ok(row.code.includes(`\`${path}\``), `README row ${c.name} names ${path}`);
    }
  });

  it('no RBAC objects and no API token, because no code talks to the Kubernetes API', () => {
    const rbacKinds = ['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding'];
    assert.deepEqual(docs.filter((d) => rbacKinds.includes(String(d.object.kind))).map((d) => kindAndName(d.object)), []);
    for (const d of docs.filter((x) => x.object.kind === 'ServiceAccount')) assert.equal(d.object.automountServiceAccountToken, false, kindAndName(d.object));
    for (const d of workloads(docs)) assert.equal(podSpec(d).automountServiceAccountToken, false, kindAndName(d.object));
    // If this fails, optional enrichment arrived: give the agent a ClusterRole with get/list/watch
    // on pods (nothing more) and mount its token, then change this test.
    const apiClientMarks = [/KUBERNETES_SERVICE_HOST/, /@kubernetes\/client-node/, /serviceaccount\/token/, /\/api\/v1\/namespaces\//];
    const offenders: string[] = [];
    const scan = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) scan(path);
        else if (name.endsWith('.ts') && apiClientMarks.some((re) => re.test(readFileSync(path, 'utf8')))) offenders.push(path);
      }
    };
    for (const dir of ['agent', 'server', 'cli', 'common', 'protocol']) scan(join(repoRoot, dir));
    assert.deepEqual(offenders, []);
  });
});

describe('resources and probes', () => {
  it('every container has CPU and memory requests and limits, requests within limits', () => {
    for (const { where, c } of allContainers()) {
      for (const r of ['cpu', 'memory']) {
        const request = c.resources?.requests?.[r];
        const limit = c.resources?.limits?.[r];
        assert.ok(request && limit, `${where}: ${r} request and limit`);
        assert.ok(quantity(request) <= quantity(limit), `${where}: ${r} request ${request} <= limit ${limit}`);
      }
    }
  });

  it("the README's resource table gives the manifest's figures", () => {
    const section = readme.slice(readme.indexOf('### Resources'), readme.indexOf('### The image'));
    for (const [row, c] of [['agent', agent], ['collector', collector]] as const) {
      const m = new RegExp(`^\\| ${row} \\| ([^|]+) \\| ([^|]+) \\|`, 'm').exec(section);
      assert.ok(m, `README resource row for ${row}`);
      assert.equal(m[1]!.trim(), `${c.resources!.requests!.cpu} CPU, ${c.resources!.requests!.memory}`);
      const cpuLimit = c.resources!.limits!.cpu!;
      assert.ok(m[2]!.startsWith(`${cpuLimit} CPU, ${c.resources!.limits!.memory}`), `${row} limits: ${m[2]}`);
    }
    const spool = agentPod.volumes!.find((v) => v.name === 'spool')!.emptyDir!.sizeLimit!;
    assert.ok(section.includes(`spool \`emptyDir\` ${spool}`));
  });

  it("the agent's memory is sized from the sampler benchmark", () => {
    const bench = JSON.parse(readFileSync(join(repoRoot, 'bench/results/sampler.json'), 'utf8')) as {
      agentLoop: { rss: { medianBytes: number; maxBytes: number } };
    };
    const request = quantity(agent.resources!.requests!.memory!);
    const limit = quantity(agent.resources!.limits!.memory!);
    assert.ok(request >= bench.agentLoop.rss.maxBytes, `request ${request} covers the measured peak ${bench.agentLoop.rss.maxBytes}`);
    assert.ok(limit >= 4 * bench.agentLoop.rss.maxBytes, `limit ${limit} leaves 4x the measured peak`);
    assert.ok(limit <= 512 * 1024 ** 2, 'and stays a small share of a node');
  });

  it("the agent's spool volume holds the findings spool plus the 2 GiB snapshot spool", async () => {
    const parsed = await parseWithProgram(cliArgv(agent));
    const spoolDir = String(parsed.options.spoolDir);
    const mount = agent.volumeMounts!.find((m) => spoolDir.startsWith(`${m.mountPath}/`) && !m.subPath);
    assert.ok(mount, `--spool-dir ${spoolDir} is on a mounted volume`);
    const volume = agentPod.volumes!.find((v) => v.name === mount.name);
    assert.ok(volume?.emptyDir?.sizeLimit, 'the spool is a size-limited emptyDir');
    // The snapshot spool's bound: its flag's value once the agent has it, else the 2 GiB default
    // the capture contract states (agent/capture/types.ts).
    const snapshotSpool = Number(parsed.options.snapshotSpoolMaxBytes ?? 2 * GiB);
    assert.ok(quantity(volume.emptyDir.sizeLimit) >= Number(parsed.options.spoolMaxBytes) + snapshotSpool, `${volume.emptyDir.sizeLimit} holds both spools`);
    // With a read-only root, /tmp must be writable and bounded too.
    const tmp = agent.volumeMounts!.find((m) => m.mountPath === '/tmp');
    assert.ok(tmp && agentPod.volumes!.find((v) => v.name === tmp.name)?.emptyDir?.sizeLimit, '/tmp is on a bounded emptyDir');
  });

  it('liveness and readiness probes on every container, on the port the CLI is told to listen on', async () => {
    const listenFlag: Record<string, string> = { agent: '--metrics-listen', collector: '--listen' };
    for (const { where, c } of allContainers()) {
      const argv = cliArgv(c);
      const listen = flagValue(argv, listenFlag[argv[0]!]!);
      assert.ok(listen, `${where} listens somewhere`);
      const port = Number(listen.split(':').pop());
      for (const probe of [c.livenessProbe, c.readinessProbe]) {
        const get = probe?.httpGet;
        assert.ok(get, `${where}: httpGet probe`);
        const named = c.ports?.find((p) => p.name === get.port || p.containerPort === get.port);
        assert.equal(named?.containerPort, port, `${where}: probe port ${get.port} is the listen port ${port}`);
      }
      assert.equal(c.livenessProbe!.httpGet!.path, '/healthz');
      assert.equal(c.readinessProbe!.httpGet!.path, '/readyz');
      // Probes come from the kubelet, not from inside the pod: not on loopback.
      assert.ok(!listen.startsWith('127.') && !listen.startsWith('[::1]'), `${where}: ${listen} is reachable by the kubelet`);
    }
  });
});

describe('the CLI accepts the args', () => {
  it('the agent: every flag known to `leakwatch agent`, values parsed', async () => {
    const parsed = await parseWithProgram(cliArgv(agent));
    assert.equal(parsed.command, 'agent');
    assert.equal(parsed.options.metricsListen, '0.0.0.0:9101');
    assert.equal(parsed.options.tokenFile, '/etc/leakwatch/agent/token');
    assert.equal(parsed.options.spoolMaxBytes, 64 * 1024 ** 2);
  });

  it('the collector: every flag known to `leakwatch collector`, values parsed', async () => {
    const parsed = await parseWithProgram(cliArgv(collector));
    assert.equal(parsed.command, 'collector');
    assert.deepEqual(parsed.options.listen, { host: '0.0.0.0', port: 7070 });
    assert.equal(parsed.options.dataDir, '/var/lib/leakwatch/data');
    assert.equal(parsed.options.retentionBytes, 10 * GiB);
  });

  it('an arg the CLI does not know, or a bad value, fails this check', async () => {
    await assert.rejects(parseWithProgram([...cliArgv(agent), '--proc-rot=/host/proc']), /unknown option '--proc-rot=\/host\/proc'/);
    await assert.rejects(parseWithProgram(['collector', '--retention-bytes=lots']), /expected a size like/);
  });

  it('both run the image built from this package version', () => {
    for (const { where, c } of allContainers()) assert.equal(c.image.split(':').pop(), pkg.version, where);
  });
});

describe('wiring', () => {
  it("the agent's token comes from the Secret the README creates, mounted where --token-file reads", () => {
    const tokenFile = flagValue(cliArgv(agent), '--token-file')!;
    const mount = agent.volumeMounts!.find((m) => tokenFile.startsWith(`${m.mountPath}/`))!;
    const volume = agentPod.volumes!.find((v) => v.name === mount.name)!;
    assert.ok(volume.secret, 'the token is a Secret');
    assert.equal((volume.secret as { defaultMode?: number }).defaultMode, 0o400, 'readable by its owner (root) only');
    assert.equal(mount.readOnly, true);
    const item = volume.secret.items!.find((i) => `${mount.mountPath}/${i.path}` === tokenFile);
    assert.ok(item, `an item lands at ${tokenFile}`);
    assert.ok(readme.includes(`create secret generic ${volume.secret.secretName} --from-file=${item.key}=`), `README creates ${volume.secret.secretName} with key ${item.key}`);
  });

  it("the collector's tokens file comes from the Secret the README creates", () => {
    const tokensFile = flagValue(cliArgv(collector), '--tokens-file')!;
    const mount = collector.volumeMounts!.find((m) => tokensFile.startsWith(`${m.mountPath}/`))!;
    const volume = collectorPod.volumes!.find((v) => v.name === mount.name)!;
    const item = volume.secret!.items!.find((i) => `${mount.mountPath}/${i.path}` === tokensFile)!;
    assert.equal((volume.secret as { defaultMode?: number }).defaultMode, 0o440, 'readable by the fsGroup, not by others');
    assert.ok(readme.includes(`create secret generic ${volume.secret!.secretName} --from-file=${item.key}`));
    // A subdirectory of the PVC's mount, never its root (see probes.test.ts for why).
    const dataDir = flagValue(cliArgv(collector), '--data-dir')!;
    const data = collector.volumeMounts!.find((m) => dataDir.startsWith(`${m.mountPath}/`));
    assert.ok(data && collectorPod.volumes!.find((v) => v.name === data.name)?.persistentVolumeClaim, 'the data dir is on the PVC');
  });

  it('the agent dials the Service, which selects the collector pods on their port', () => {
    const service = find(docs, 'Service', 'leakwatch-collector').object as any;
    const url = new URL(flagValue(cliArgv(agent), '--collector')!);
    assert.equal(url.hostname, `${service.metadata.name}.${service.metadata.namespace}.svc`);
    assert.equal(Number(url.port), service.spec.ports[0].port);
    const labels = (collectorDoc.object.spec as any).template.metadata.labels as Record<string, string>;
    for (const [k, v] of Object.entries(service.spec.selector as Record<string, string>)) assert.equal(labels[k], v);
    assert.ok(collector.ports!.some((p) => p.name === service.spec.ports[0].targetPort));
  });

  it('the NetworkPolicy selects the collector and admits the agent pods', () => {
    const policy = find(docs, 'NetworkPolicy', 'leakwatch-collector').object as any;
    const collectorLabels = (collectorDoc.object.spec as any).template.metadata.labels as Record<string, string>;
    const agentLabels = (agentDoc.object.spec as any).template.metadata.labels as Record<string, string>;
    const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
    assert.ok(matches(policy.spec.podSelector.matchLabels, collectorLabels));
    assert.ok(!matches(policy.spec.podSelector.matchLabels, agentLabels), 'the policy does not select the agents');
    const peers = policy.spec.ingress.flatMap((r: any) => r.from) as any[];
    assert.ok(peers.some((p) => !p.namespaceSelector && p.podSelector && matches(p.podSelector.matchLabels, agentLabels)), 'agents are admitted');
    assert.ok(peers.every((p) => p.podSelector?.matchLabels && Object.keys(p.podSelector.matchLabels).length > 0), 'no peer admits every pod');
  });

  it('the agent runs on every node, evicted last, and names its node', () => {
    assert.ok(agentPod.tolerations?.some((t) => t.operator === 'Exists' && t.key === undefined && t.effect === undefined));
    assert.equal(agentPod.priorityClassName, 'system-node-critical');
    assert.equal(agent.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
  });

  it('the namespace allows the privileged Pod Security level and says why', () => {
    const ns = find(docs, 'Namespace', 'leakwatch');
    assert.equal((ns.object.metadata as any).labels['pod-security.kubernetes.io/enforce'], 'privileged');
    const labels = ns.document.getIn(['metadata', 'labels'], true);
    assert.ok(isMap(labels));
    const key = (labels as YAMLMap).items.find((p) => isScalar(p.key) && p.key.value === 'pod-security.kubernetes.io/enforce')!.key as { commentBefore?: string };
    assert.match(key.commentBefore ?? '', /host PID/);
  });
});
