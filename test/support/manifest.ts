// daemonset.yaml as the tests read it: every document parsed (with its comments kept), the two
// workloads found by name, and a container's args as the kubelet would hand them to the process.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, type Document } from 'yaml';
import { repoRoot } from './cli.js';

export const manifestPath = join(repoRoot, 'daemonset.yaml');
export const capabilitiesPath = join(repoRoot, 'deploy', 'capabilities.json');

export interface ManifestDoc {
  /** The parsed object (plain JSON data). */
  object: Record<string, unknown>;
  /** The yaml Document, for comments. */
  document: Document.Parsed;
}

/** Every document of the file; a YAML error anywhere throws naming the document. */
export function loadManifest(text = readFileSync(manifestPath, 'utf8')): ManifestDoc[] {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new Error('daemonset.yaml: no YAML documents');
  return docs
    .map((document, i) => {
      if (document.errors.length > 0) throw new Error(`daemonset.yaml document ${i}: ${document.errors[0]!.message}`);
      return { document, object: document.toJS() as Record<string, unknown> };
    })
    .filter((d) => d.object !== null && d.object !== undefined);
}

export function kindAndName(o: Record<string, unknown>): string {
  const meta = o.metadata as { name?: string } | undefined;
  return `${String(o.kind)}/${meta?.name ?? '?'}`;
}

export function find(docs: ManifestDoc[], kind: string, name: string): ManifestDoc {
  const d = docs.find((x) => x.object.kind === kind && (x.object.metadata as { name?: string })?.name === name);
  if (!d) throw new Error(`daemonset.yaml has no ${kind}/${name}`);
  return d;
}

// Minimal shapes of what the tests read; the schema test checks the full objects.
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
export interface Probe {
  httpGet?: { path: string; port: string | number };
}
export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: Array<{ name?: string; containerPort: number }>;
  securityContext?: {
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    runAsNonRoot?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
  };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  volumeMounts?: VolumeMount[];
}
export interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  emptyDir?: { sizeLimit?: string };
  secret?: { secretName: string; items?: Array<{ key: string; path: string }> };
  persistentVolumeClaim?: { claimName: string };
}
export interface PodSpec {
  hostPID?: boolean;
  hostNetwork?: boolean;
  hostIPC?: boolean;
  securityContext?: { runAsUser?: number; runAsNonRoot?: boolean; runAsGroup?: number; fsGroup?: number };
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  priorityClassName?: string;
  tolerations?: Array<Record<string, unknown>>;
}

export function podSpec(doc: ManifestDoc): PodSpec {
  const spec = (doc.object.spec as { template?: { spec?: PodSpec } } | undefined)?.template?.spec;
  if (!spec) throw new Error(`${kindAndName(doc.object)} has no pod template`);
  return spec;
}

/** The workloads (kinds with a pod template) in the file. */
export function workloads(docs: ManifestDoc[]): ManifestDoc[] {
  return docs.filter((d) => ['DaemonSet', 'Deployment', 'StatefulSet', 'Job', 'CronJob', 'ReplicaSet', 'Pod'].includes(String(d.object.kind)));
}

/**
 * `$(VAR)` in args expanded the way the kubelet does it, from the container's env (fieldRef
 * values taken from `fieldValues`); `$$(VAR)` stays literal, unknown references stay as written.
 */
export function expandArgs(container: Container, fieldValues: Record<string, string>): string[] {
  const env = new Map<string, string>();
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env.set(e.name, e.value);
    else if (e.valueFrom?.fieldRef) {
      const v = fieldValues[e.valueFrom.fieldRef.fieldPath];
      if (v === undefined) throw new Error(`no test value for fieldRef ${e.valueFrom.fieldRef.fieldPath}`);
      env.set(e.name, v);
    }
  }
  return (container.args ?? []).map((a) =>
    a.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) => (m === '$$' ? '$' : env.get(name!) ?? m)),
  );
}

/** `--flag=value` or `--flag value` → value, from an argv list. */
export function flagValue(args: string[], flag: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === flag) return args[i + 1];
    if (a.startsWith(`${flag}=`)) return a.slice(flag.length + 1);
  }
  return undefined;
}

/** Replace a flag's value (both spellings), or append the flag when it is absent. */
export function withFlag(args: string[], flag: string, value: string): string[] {
  const out: string[] = [];
  let replaced = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === flag) {
      out.push(`${flag}=${value}`);
      i++;
      replaced = true;
    } else if (a.startsWith(`${flag}=`)) {
      out.push(`${flag}=${value}`);
      replaced = true;
    } else out.push(a);
  }
  if (!replaced) out.push(`${flag}=${value}`);
  return out;
}

export interface CapabilityEntry {
  name: string;
  code: string[];
  why: string;
}

export function documentedCapabilities(): CapabilityEntry[] {
  const parsed = JSON.parse(readFileSync(capabilitiesPath, 'utf8')) as { agent: CapabilityEntry[] };
  return parsed.agent;
}

/** Kubernetes quantity ("256Mi", "2304Mi", "1Gi", "500m", "1") → bytes or cores. */
export function quantity(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$/.exec(text);
  if (!m) throw new Error(`not a Kubernetes quantity: ${text}`);
  const factors: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12, m: 1e-3 };
  return Number(m[1]) * (m[2] ? factors[m[2]]! : 1);
}
