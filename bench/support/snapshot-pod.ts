// The snapshot bench's target pod: pod-shaped cgroups (demo/fake-pod.ts, so the real agent names
// the pod from them and from the pod-log directory) whose limits are then raised past the 256 MiB
// the tests are held to. A full snapshot of a 400 MiB heap costs the target about 5 GB: the bench
// sizes the cgroup to fit the heap and the snapshot's working memory, and the target bounds itself
// (it fills a fixed amount of heap and allocates nothing else).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createFakePod, MAX_TEST_LIMIT_BYTES, type FakePod } from '../../demo/fake-pod.js';

/** The agent re-reads the pod-log directory at most this often (agent/host/pod-names.ts, rescanIntervalMs). */
export const POD_NAMES_RESCAN_MS = 10_000;

/** `logRoot`: shared by every pod of the run, so one agent (--pod-log-root <logRoot>/pods) names them all. */
export function createSnapshotBenchPod(name: string, limitBytes: number, logRoot: string): FakePod {
  const pod = createFakePod({ namespace: 'bench', name, logRoot, containers: [{ name: 'app', limitBytes: MAX_TEST_LIMIT_BYTES }] });
  try {
    // The pod's limit first: a container may not usefully exceed its pod.
    writeFileSync(join(pod.podCgroupDir, 'memory.limit_in_bytes'), String(limitBytes));
    writeFileSync(join(pod.containers[0]!.cgroupDir, 'memory.limit_in_bytes'), String(limitBytes));
    pod.containers[0]!.limitBytes = limitBytes;
  } catch (err) {
    void pod.destroy();
    throw err;
  }
  return pod;
}
