// The snapshot bench's target pod: pod-shaped cgroups (demo/fake-pod.ts, so the real agent names
// the pod from them and from the pod-log directory). Container `app` holds the target; its limit
// is raised past the 256 MiB the tests are held to: a full snapshot of a 400 MiB heap costs the
// target about 5 GB, so the bench sizes the cgroup to fit the heap and the snapshot's working
// memory, and the target bounds itself (it fills a fixed amount of heap and allocates nothing
// else). Container `sidecar` (256 MiB) runs a small leaking Node.js process: the collector routes
// a `snapshots take` to the node it has seen the pod on, which it learns from a finding about one
// of the pod's processes, as for any pod someone snapshots because it leaks.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createFakePod, MAX_TEST_LIMIT_BYTES, type FakePod } from '../../demo/fake-pod.js';

/** `logRoot`: shared by every pod of the run, so one agent (--pod-log-root <logRoot>/pods) names them all. */
export function createSnapshotBenchPod(name: string, appLimitBytes: number, logRoot: string): FakePod {
  const pod = createFakePod({
    namespace: 'bench',
    name,
    logRoot,
    containers: [
      { name: 'app', limitBytes: MAX_TEST_LIMIT_BYTES },
      { name: 'sidecar', limitBytes: MAX_TEST_LIMIT_BYTES },
    ],
  });
  try {
    const app = pod.containers.find((c) => c.name === 'app')!;
    // The pod's limit first: a container may not usefully exceed its pod.
    writeFileSync(join(pod.podCgroupDir, 'memory.limit_in_bytes'), String(appLimitBytes + MAX_TEST_LIMIT_BYTES));
    writeFileSync(join(app.cgroupDir, 'memory.limit_in_bytes'), String(appLimitBytes));
    app.limitBytes = appLimitBytes;
  } catch (err) {
    void pod.destroy();
    throw err;
  }
  return pod;
}
