// Who a finding (or a capture) is about, as the wire names it: the identity fields of a sampled process.
import type { AttributedProcess } from '../host/node-sampler.js';
import type { FindingTarget } from '../../protocol/findings.js';

export function findingTargetOf(p: AttributedProcess): FindingTarget {
  return {
    pid: p.pid,
    comm: p.comm,
    cmdline: p.cmdline,
    namespace: p.namespace,
    pod: p.pod,
    podUid: p.podUid,
    container: p.container,
    containerId: p.containerId,
  };
}
