// `leakwatch agent`: the node agent as a long-running service (the DaemonSet's command). It
// detects on this node and reports findings to a collector; while the collector is away they
// wait in the spool. Logs are JSON lines on stderr; SIGTERM/SIGINT flush for up to 2 s and exit 0.
import { InvalidArgumentError, type Command } from 'commander';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { createLogger } from '../../common/log.js';
import { DEFAULT_SPOOL_MAX_BYTES } from '../../agent/disk-queue.js';
import { startAgent, defaultSpoolDir } from '../../agent/runtime.js';
import { createSnapshotSpool, DEFAULT_SNAPSHOT_SPOOL_MAX_BYTES, type SnapshotSpool } from '../../agent/snapshot-spool.js';
import { agentSocketUrl, readCaFile } from '../../agent/uplink.js';
import { addNodeRootOptions, type NodeRootOptions } from '../node-options.js';
import { parsePositiveNumber } from '../parse.js';
import { packageVersion } from '../package-info.js';
import { parseByteSize, parseListen } from './collector.js';
import { createAgentMetrics } from '../../agent/metrics.js';
import { createLoopLiveness, startAgentHttp } from '../../agent/http.js';
import { addProbeOptions, startProbeOption, type ProbeCliOptions } from '../probe-options.js';
import { addCaptureOptions, captureOption, type CaptureCliOptions, type LateBound } from '../capture-options.js';
import { watchStopSignals } from '../stop-signals.js';

interface AgentCliOptions extends Omit<NodeRootOptions, 'kmsg'>, ProbeCliOptions, CaptureCliOptions {
  /** false with --no-kmsg. */
  kmsg: string | false;
  metricsListen: string;
  collector?: string;
  token?: string;
  tokenFile?: string;
  ca?: string;
  nodeName: string;
  agentId?: string;
  interval: number;
  spoolDir?: string;
  spoolMaxBytes: number;
  snapshotSpoolMaxBytes: number;
  includeHost?: boolean;
}

/** Time SIGTERM leaves for delivering what is queued before the process exits. */
const STOP_FLUSH_MS = 2_000;

class ConfigError extends Error {}

export function registerAgent(program: Command): void {
  addCaptureOptions(addProbeOptions(addNodeRootOptions(
    program
      .command('agent')
      .description('run the node agent: detect memory growth, fan-out, suspicious spawns and OOM kills, and report them to a collector')
      .option('--collector <url>', 'collector URL, e.g. https://leakwatch-collector:7070 (env LEAKWATCH_URL)')
      .option('--token <token>', 'agent token (env LEAKWATCH_TOKEN); in Kubernetes prefer --token-file')
      .option('--token-file <path>', 'file holding the agent token, e.g. a mounted Secret (env LEAKWATCH_TOKEN_FILE)')
      .option('--ca <file>', 'PEM CA certificate to trust for an https collector, e.g. a self-signed one (env LEAKWATCH_CA)')
      .option('--node-name <name>', 'node name put on findings (env NODE_NAME)', process.env.NODE_NAME || hostname())
      .option('--agent-id <id>', 'id the collector knows this agent by (default: the node name)')
      .option('-i, --interval <seconds>', 'sampling interval', parsePositiveNumber, 1)
      .option('--spool-dir <dir>', `where findings wait while the collector is away (env LEAKWATCH_SPOOL_DIR; default ${defaultSpoolDir()})`)
      .option('--spool-max-bytes <size>', 'bound of the spool; past it the oldest findings are dropped and counted (e.g. 64MiB)', spoolSize, DEFAULT_SPOOL_MAX_BYTES)
      .option('--snapshot-spool-max-bytes <size>', 'bound of the heap snapshots waiting for the collector; a capture that would not fit is refused and reported (e.g. 2GiB)', parseByteSize, DEFAULT_SNAPSHOT_SPOOL_MAX_BYTES)
      .option('--include-host', 'also watch processes that are not in a pod')
      .option('--no-kmsg', 'do not follow the kernel log (OOM kills then come from memcg counters only)')
      .option('--metrics-listen <host:port>', 'serve /metrics, /healthz and /readyz here (env LEAKWATCH_METRICS_LISTEN; "off" to disable)', process.env.LEAKWATCH_METRICS_LISTEN || '127.0.0.1:9101'),
  ))).action(async (options: AgentCliOptions) => {
    let config: ReturnType<typeof resolveConfig>;
    try {
      config = resolveConfig(options, process.env);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      fail(err.message, 2);
      return;
    }
    const log = createLogger();
    const stop = watchStopSignals();
    let metricsAddress: { host: string; port: number } | null = null;
    try {
      metricsAddress = options.metricsListen === 'off' ? null : parseListen(options.metricsListen);
    } catch (err) {
      stop.dispose();
      fail(`--metrics-listen: ${(err as Error).message}`, 2);
      return;
    }
    const metrics = createAgentMetrics({ nodeName: options.nodeName, includeHost: options.includeHost ?? false });
    const liveness = createLoopLiveness({ intervalMs: options.interval * 1000 });
    let runtime: ReturnType<typeof startAgent>;
    let snapshotSpool: SnapshotSpool;
    const late: LateBound = { runtime: null, probes: null };
    try {
      // Heap snapshots wait here for the collector; the capture side hands its files to it (SnapshotSink).
      snapshotSpool = createSnapshotSpool({ spoolDir: config.spoolDir, maxBytes: options.snapshotSpoolMaxBytes, log });
      runtime = startAgent({
        nodeName: options.nodeName,
        ...(options.agentId ? { agentId: options.agentId } : {}),
        version: packageVersion(),
        intervalSec: options.interval,
        sampler: { procRoot: options.procRoot, cgroupRoot: options.cgroupRoot, podLogRoot: options.podLogRoot },
        kmsgPath: options.kmsg === false ? null : options.kmsg,
        includeHost: options.includeHost ?? false,
        collector: config.collector,
        spoolDir: config.spoolDir,
        spoolMaxBytes: options.spoolMaxBytes,
        snapshotSpool,
        capture: captureOption(options, snapshotSpool, late),
        log,
        onPass: (pass) => {
          liveness.beat();
          if (pass.sample) metrics.update(pass.sample, pass.openFindings, pass.durationMs, { events: pass.events });
        },
      });
    } catch (err) {
      stop.dispose();
      fail(err instanceof Error ? err.message : String(err), 2);
      return;
    }
    late.runtime = runtime;
    let http: Awaited<ReturnType<typeof startAgentHttp>> | null = null;
    if (metricsAddress) {
      try {
        http = await startAgentHttp({ ...metricsAddress, metrics, healthy: liveness.healthy, ready: () => runtime.stats().passes > 0, warn: (m) => log.warn(m) });
      } catch (err) {
        await runtime.close({ flushMs: 0 });
        stop.dispose();
        fail(err instanceof Error ? err.message : String(err), 2);
        return;
      }
    }
    let probes: Awaited<ReturnType<typeof startProbeOption>> = null;
    try {
      probes = await startProbeOption(options, options.procRoot, log);
      late.probes = probes;
    } catch (err) {
      await http?.close();
      await runtime.close({ flushMs: 0 });
      stop.dispose();
      fail(`--probe-socket: ${(err as Error).message}`, 2);
      return;
    }
    log.info('agent started', {
      node: options.nodeName,
      collector: runtime.uplink?.url,
      spoolDir: config.spoolDir,
      queuedFindings: runtime.queue?.size ?? 0,
      intervalSec: options.interval,
    });
    const signal = await stop.first;
    log.info('signal received; stopping', { signal, flushMs: STOP_FLUSH_MS });
    stop.onSecond(() => log.warn('second signal; exiting without flushing'));
    await runtime.close({ flushMs: STOP_FLUSH_MS });
    await probes?.close();
    await http?.close();
    const stats = runtime.stats();
    log.info('agent stopped', { queuedFindings: stats.spool?.queued ?? 0, droppedFindings: stats.uplink?.droppedFindings ?? 0 });
    process.exitCode = 0;
    // Whatever still holds the event loop after a clean close is not worth the wait.
    setTimeout(() => process.exit(0), 500).unref();
  });
}

/** Flags first, then the environment; every problem is one line saying what to do. */
function resolveConfig(options: AgentCliOptions, env: NodeJS.ProcessEnv) {
  const url = options.collector || env.LEAKWATCH_URL;
  if (!url) throw new ConfigError('no collector: pass --collector <url> or set LEAKWATCH_URL');
  try {
    agentSocketUrl(url);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (options.token && options.tokenFile) throw new ConfigError('give --token or --token-file, not both');
  const tokenFile = options.tokenFile || (options.token ? undefined : env.LEAKWATCH_TOKEN_FILE);
  let token: string | undefined;
  if (tokenFile) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(`cannot read the token file ${tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!token) throw new ConfigError(`the token file ${tokenFile} is empty`);
  } else {
    token = options.token || env.LEAKWATCH_TOKEN;
  }
  if (!token) throw new ConfigError('no token: pass --token-file <path> or --token <token>, or set LEAKWATCH_TOKEN');
  if (/\s/.test(token)) throw new ConfigError(`the token${tokenFile ? ` in ${tokenFile}` : ''} contains whitespace; a token is one word`);
  const caPath = options.ca || env.LEAKWATCH_CA;
  let ca: Buffer | undefined;
  if (caPath) {
    try {
      ca = readCaFile(caPath);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
  }
  return {
    collector: { url, token, ...(ca ? { ca } : {}) },
    spoolDir: options.spoolDir || env.LEAKWATCH_SPOOL_DIR || defaultSpoolDir(),
  };
}

function spoolSize(value: string): number {
  const bytes = parseByteSize(value);
  if (bytes < 64 * 1024) throw new InvalidArgumentError(`the spool needs at least 64KiB, got "${value}"`);
  return bytes;
}

function fail(message: string, exitCode: number): void {
  process.stderr.write(`leakwatch agent: ${message}\n`);
  process.exitCode = exitCode;
}
