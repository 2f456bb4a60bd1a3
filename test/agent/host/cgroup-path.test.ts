import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isSandboxCommand, memoryCgroupPath, parsePodCgroup } from '../../../agent/host/cgroup-path.js';
import type { CgroupIdentity } from '../../../agent/host/types.js';

const fixtures = fileURLToPath(new URL('../../fixtures/cgroup/', import.meta.url));
const procCgroup = (layout: string, pid: number) => readFileSync(`${fixtures}${layout}/proc/${pid}/cgroup`, 'utf8');

const UID = '6d5a0521-a5ad-4e7d-b233-d05c2ee50ae8';
const UID_US = UID.replaceAll('-', '_');
const ID = 'c1d3b72cef072add8f4e352a93ea8e0e1283e0b93b14c73531ed33f1bd4e0931';

function identity(path: string): CgroupIdentity {
  const parsed = parsePodCgroup(path);
  assert.ok(parsed !== null && parsed !== 'skip', `expected an identity for ${path}, got ${String(parsed)}`);
  return parsed;
}

test('memoryCgroupPath: v1 memory line wins on a hybrid host', () => {
  const text = procCgroup('v1-cgroupfs-guaranteed', 3120);
  assert.equal(
    memoryCgroupPath(text),
    '/kubepods/pod76e89285-1d33-4603-bcc9-3511dc81eb4c/58e6338d9a3011aa85882c12c6630e302cda30918f4f850a2f10216ddaae2fe5',
  );
  // The unified line of a hybrid systemd host names a different (systemd) path: not the memory one.
  const hybridSystemd = '5:memory:/kubepods.slice/a.scope\n1:name=systemd:/kubepods.slice/b.scope\n0::/kubepods.slice/b.scope\n';
  assert.equal(memoryCgroupPath(hybridSystemd), '/kubepods.slice/a.scope');
});

test('memoryCgroupPath: memory co-mounted with other controllers', () => {
  assert.equal(memoryCgroupPath('3:cpuset:/\n4:memory,hugetlb:/kubepods/x\n0::/\n'), '/kubepods/x');
});

test('memoryCgroupPath: pure v2 host uses the 0:: line', () => {
  const text = procCgroup('v2-systemd-containerd', 5230);
  assert.equal(
    memoryCgroupPath(text),
    '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod13f5c406_d825_48da_880c_baece02e915e.slice/cri-containerd-1bc688d6354788768a5b0da5e67a3a3d6829d5fe4fc188096758d233121059ff.scope',
  );
});

test('memoryCgroupPath: keeps colons inside the path, ignores garbage, null when nothing fits', () => {
  const packed = `/system.slice/containerd.service/kubepods-besteffort-pod${UID_US}.slice:cri-containerd:${ID}`;
  assert.equal(memoryCgroupPath(`12:memory:${packed}\n`), packed);
  assert.equal(memoryCgroupPath(''), null);
  assert.equal(memoryCgroupPath('garbage\n\u0000\u0001:::\n4:memory\n'), null);
  assert.equal(memoryCgroupPath('1:name=systemd:/x\n2:cpu:/y\n'), null);
  // A truncated read that cut the memory line short of its path.
  assert.equal(memoryCgroupPath('4:memory:'), null);
});

test('cgroupfs Burstable and BestEffort', () => {
  assert.deepEqual(identity(`/kubepods/burstable/pod${UID}/${ID}`), {
    podUid: UID,
    qos: 'Burstable',
    podCgroup: `/kubepods/burstable/pod${UID}`,
    containerId: ID,
    runtime: 'unknown',
    containerCgroup: `/kubepods/burstable/pod${UID}/${ID}`,
  });
  const be = identity(`/kubepods/besteffort/pod${UID}/${ID}`);
  assert.equal(be.qos, 'BestEffort');
  assert.equal(be.podCgroup, `/kubepods/besteffort/pod${UID}`);
});

test('cgroupfs Guaranteed sits directly under kubepods', () => {
  const g = identity(`/kubepods/pod${UID}/${ID}`);
  assert.equal(g.qos, 'Guaranteed');
  assert.equal(g.podCgroup, `/kubepods/pod${UID}`);
  assert.equal(g.containerId, ID);
});

test('pod-level path: identity without a container', () => {
  assert.deepEqual(identity(`/kubepods/burstable/pod${UID}`), {
    podUid: UID,
    qos: 'Burstable',
    podCgroup: `/kubepods/burstable/pod${UID}`,
    containerId: null,
    runtime: 'unknown',
    containerCgroup: null,
  });
  const slice = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_US}.slice`;
  assert.equal(identity(slice).containerId, null);
  assert.equal(identity(slice).podCgroup, slice);
});

test('cri-o under the cgroupfs driver keeps its prefix', () => {
  const c = identity(`/kubepods/burstable/pod${UID}/crio-${ID}`);
  assert.equal(c.runtime, 'cri-o');
  assert.equal(c.containerId, ID);
  assert.equal(parsePodCgroup(`/kubepods/burstable/pod${UID}/crio-conmon-${ID}`), 'skip');
});

test('systemd driver, each runtime', () => {
  const pod = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_US}.slice`;
  for (const [name, runtime] of [
    [`cri-containerd-${ID}.scope`, 'containerd'],
    [`crio-${ID}.scope`, 'cri-o'],
    [`docker-${ID}.scope`, 'docker'],
  ] as const) {
    assert.deepEqual(identity(`${pod}/${name}`), {
      podUid: UID,
      qos: 'Burstable',
      podCgroup: pod,
      containerId: ID,
      runtime,
      containerCgroup: `${pod}/${name}`,
    });
  }
  assert.equal(parsePodCgroup(`${pod}/crio-conmon-${ID}.scope`), 'skip');
});

test('systemd driver: BestEffort and Guaranteed slices, uid underscores back to dashes', () => {
  const be = identity(`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_US}.slice/cri-containerd-${ID}.scope`);
  assert.equal(be.qos, 'BestEffort');
  assert.equal(be.podUid, UID);
  const g = identity(`/kubepods.slice/kubepods-pod${UID_US}.slice/cri-containerd-${ID}.scope`);
  assert.equal(g.qos, 'Guaranteed');
  assert.equal(g.podCgroup, `/kubepods.slice/kubepods-pod${UID_US}.slice`);
});

test('static pods: 32-hex UID without dashes', () => {
  const uid = '8daa50c3a64c9ff60bb9eab7b44b56fd';
  assert.equal(identity(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid}.slice/cri-containerd-${ID}.scope`).podUid, uid);
  assert.equal(identity(`/kubepods/burstable/pod${uid}/${ID}`).podUid, uid);
});

test('nested prefixes: kind/minikube nodes and nested containerd', () => {
  const kindSystemd = identity(
    `/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${UID_US}.slice/cri-containerd-${ID}.scope`,
  );
  assert.equal(kindSystemd.qos, 'BestEffort');
  assert.equal(kindSystemd.podCgroup, `/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${UID_US}.slice`);

  const node = 'd6701ec289c56e4391acb11d07474b3139466857a305490575508a8b7a9fcf22';
  const minikube = identity(`/docker/${node}/kubepods/burstable/pod${UID}/${ID}`);
  assert.equal(minikube.podCgroup, `/docker/${node}/kubepods/burstable/pod${UID}`);
  assert.equal(minikube.containerId, ID);
  const minikubeSystemd = identity(`/docker/${node}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_US}.slice/crio-${ID}.scope`);
  assert.equal(minikubeSystemd.runtime, 'cri-o');

  const kindCgroupfs = identity(`/kubelet/kubepods/besteffort/pod${UID}/${ID}`);
  assert.equal(kindCgroupfs.podCgroup, `/kubelet/kubepods/besteffort/pod${UID}`);

  // containerd's systemd "slice:prefix:id" spec as one literal directory (k3s, nested containerd).
  const packedPath = `/system.slice/containerd.service/kubepods-burstable-pod${UID_US}.slice:cri-containerd:${ID}`;
  assert.deepEqual(identity(packedPath), {
    podUid: UID,
    qos: 'Burstable',
    podCgroup: packedPath,
    containerId: ID,
    runtime: 'containerd',
    containerCgroup: packedPath,
  });
  assert.equal(parsePodCgroup(`/system.slice/containerd.service/kubepods-pod${UID_US}.slice:crio-conmon:${ID}`), 'skip');
});

test('deeper cgroups inside a container belong to that container', () => {
  const c = identity(`/kubepods/burstable/pod${UID}/${ID}/init.scope`);
  assert.equal(c.containerId, ID);
  assert.equal(c.containerCgroup, `/kubepods/burstable/pod${UID}/${ID}`);
});

test('the outermost pod wins when a cluster runs inside a pod', () => {
  const inner = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
  const c = identity(`/kubepods/burstable/pod${UID}/${ID}/kubepods/besteffort/pod${inner}/${'f'.repeat(64)}`);
  assert.equal(c.podUid, UID);
  assert.equal(c.containerId, ID);
});

test('unrecognised child of a pod: the pod, without inventing a container', () => {
  const c = identity(`/kubepods/burstable/pod${UID}/kata_sandbox`);
  assert.equal(c.podUid, UID);
  assert.equal(c.containerId, null);
  assert.equal(c.containerCgroup, null);
});

test('non-pod paths give null', () => {
  for (const path of [
    '/',
    '/init.scope',
    '/system.slice/containerd.service',
    '/user.slice/user-1000.slice/session-3.scope',
    `/docker/${ID}`,
    '/kubepods',
    '/kubepods/burstable',
    '/kubepods.slice/kubepods-burstable.slice',
    `/elsewhere/pod${UID}/${ID}`, // a pod<uid> directory not under kubepods
    `/kubepods/burstable/podnot-a-uid/${ID}`,
    '',
    'garbage',
    // Seen from inside a cgroup namespace: the cgroupfs path has lost its kubepods ancestor.
    `/../../pod${UID}/${ID}`,
  ]) {
    assert.equal(parsePodCgroup(path), null, path);
  }
});

test('cgroup-namespaced systemd path still names the pod, keeping the .. segments', () => {
  const c = identity(`/../../kubepods-burstable-pod${UID_US}.slice/cri-containerd-${ID}.scope`);
  assert.equal(c.podUid, UID);
  assert.ok(c.podCgroup.startsWith('/../..'));
});

test('every fixture layout: /proc/<pid>/cgroup to identity', () => {
  const cases: Array<[string, number, Partial<CgroupIdentity> | 'skip']> = [
    ['v1-cgroupfs-burstable', 2230, { podUid: 'd04fe68c-27f4-4e2d-ac19-f5cbb35f1ff3', qos: 'Burstable', runtime: 'unknown', containerId: '6b3d38e433987125d25e7c1b8ca8c7eeb64cf67ae7e8d7be2dc7b5787827bc71' }],
    ['v1-cgroupfs-burstable', 1872, { podUid: '8ab7cc1b-c45a-46fd-9f97-6a1770fa78c0', qos: 'BestEffort', containerId: '8e8b8d019b702070669879f5319ff83d0d03bc0a7a70a4eb77f977052185124c' }],
    ['v1-cgroupfs-guaranteed', 3120, { podUid: '76e89285-1d33-4603-bcc9-3511dc81eb4c', qos: 'Guaranteed', podCgroup: '/kubepods/pod76e89285-1d33-4603-bcc9-3511dc81eb4c' }],
    ['v2-systemd-containerd', 5230, { podUid: '13f5c406-d825-48da-880c-baece02e915e', qos: 'Burstable', runtime: 'containerd', containerId: '1bc688d6354788768a5b0da5e67a3a3d6829d5fe4fc188096758d233121059ff' }],
    ['v2-systemd-containerd', 6120, { podUid: '668ffe4c-9bf9-48be-8433-0315e2398b5f', qos: 'Guaranteed', runtime: 'containerd' }],
    ['v2-systemd-crio', 7033, { podUid: 'f62fb6b7-2c32-4df9-ace1-4681f073fc5b', runtime: 'cri-o', containerId: 'b4997560d2a3e90bbeb386861872ef825979b1cce78382d0d341b3ee03295bd0' }],
    ['v2-systemd-crio', 7010, 'skip'],
    ['v2-systemd-docker', 8044, { podUid: '099bf1a7-b445-4057-af01-392e8a6f99b0', qos: 'BestEffort', runtime: 'docker', containerId: '1cfcd47c971e3887b8bea004037b6ff7431e6a26c2615e89705412f809ff081d' }],
  ];
  for (const [layout, pid, expected] of cases) {
    const path = memoryCgroupPath(procCgroup(layout, pid));
    assert.ok(path !== null, `${layout}/${pid}`);
    const parsed = parsePodCgroup(path);
    if (expected === 'skip') {
      assert.equal(parsed, 'skip', `${layout}/${pid}`);
      continue;
    }
    assert.ok(parsed !== null && parsed !== 'skip', `${layout}/${pid}`);
    for (const [key, value] of Object.entries(expected)) {
      assert.equal(parsed[key as keyof CgroupIdentity], value, `${layout}/${pid} ${key}`);
    }
    assert.equal(parsed.containerCgroup, path, `${layout}/${pid}: container cgroup is the process's cgroup`);
  }
  // Host processes are no pod.
  assert.equal(parsePodCgroup(memoryCgroupPath(procCgroup('v2-systemd-containerd', 1))!), null);
  assert.equal(parsePodCgroup(memoryCgroupPath(procCgroup('v1-cgroupfs-burstable', 1))!), null);
});

test('isSandboxCommand: pause processes only', () => {
  assert.equal(isSandboxCommand('pause', '/pause'), true);
  assert.equal(isSandboxCommand('pause', null), true); // exe unreadable: the name alone
  assert.equal(isSandboxCommand('pod', '/usr/bin/pod'), true);
  assert.equal(isSandboxCommand('pause', '/usr/local/bin/node'), false); // a process that renamed itself
  assert.equal(isSandboxCommand('node', '/usr/local/bin/node'), false);
  assert.equal(isSandboxCommand('pod', '/app/pod'), false);
});
