// `leakwatch up`: the collector and an agent for this machine in one process, with embedded
// defaults: data in ./.leakwatch, 127.0.0.1:7070, tokens made at the first start. The README's
// "run it here" command (`npm start`).
import type { Command } from 'commander';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../common/log.js';
import { createAgentMetrics } from '../../agent/metrics.js';
import { startAgent } from '../../agent/runtime.js';
import { createSnapshotSpool, DEFAULT_SNAPSHOT_SPOOL_MAX_BYTES } from '../../agent/snapshot-spool.js';
import { createTokenInFile, loadTokensFile, writeTokensFile, type TokenEntry } from '../../server/auth.js';
import { startCollector } from '../../server/collector.js';
import { createCollectorMetrics } from '../../server/metrics.js';
import { openStore } from '../../server/store/sqlite-store.js';
import { LOCAL_TOKEN_FILE } from '../api-client.js';
import { addNodeRootOptions, type NodeRootOptions } from '../node-options.js';
import { packageVersion } from '../package-info.js';
import { parsePositiveNumber } from '../parse.js';
import { parseByteSize, parseListen } from './collector.js';
import { addProbeOptions, startProbeOption, type ProbeCliOptions } from '../probe-options.js';
import { addCaptureOptions, captureOption, type CaptureCliOptions, type LateBound } from '../capture-options.js';
import { watchStopSignals } from '../stop-signals.js';

interface UpOptions extends Omit<NodeRootOptions, 'kmsg'>, ProbeCliOptions, CaptureCliOptions {
  kmsg: string | false;
  listen: { host: string; port: number };
  dataDir: string;
  interval: number;
  nodeName: string;
  includeHost?: boolean;
  snapshotSpoolMaxBytes: number;
}

const LOCAL_AGENT = 'local-agent';
const LOCAL_ADMIN = 'local-admin';

export function registerUp(program: Command): void {
  addCaptureOptions(addProbeOptions(addNodeRootOptions(
    program
      .command('up')
      .description('run the collector and an agent for this machine in one process (data in ./.leakwatch, http://127.0.0.1:7070)')
      .option('--listen <host:port>', 'address of the collector', parseListen, parseListen('127.0.0.1:7070'))
      .option('--data-dir <dir>', 'database, evidence and tokens', '.leakwatch')
      .option('-i, --interval <seconds>', 'sampling interval', parsePositiveNumber, 1)
      .option('--node-name <name>', 'node name put on findings (env NODE_NAME)', process.env.NODE_NAME ?? hostname())
      .option('--include-host', 'also watch processes that are not in a pod')
      .option('--no-kmsg', 'do not follow the kernel log')
      .option('--snapshot-spool-max-bytes <size>', 'bound of the heap snapshots waiting for the collector (e.g. 2GiB)', parseByteSize, DEFAULT_SNAPSHOT_SPOOL_MAX_BYTES),
  ))).action(async (options: UpOptions) => {
    const log = createLogger();
    const stop = watchStopSignals();
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    const tokensPath = join(options.dataDir, 'tokens.json');
    const firstRun = !existsSync(tokensPath);
    let adminToken: string | null = null;
    if (firstRun) {
      adminToken = createTokenInFile(tokensPath, LOCAL_ADMIN, ['admin']).token;
      // Kept for the engineer's commands on this machine (leakwatch findings reads it); 0600 in a 0700 directory.
      writeFileSync(join(options.dataDir, 'local-token'), `${adminToken}\n`, { mode: 0o600 });
    }
    // The in-process agent gets a fresh token at every start: the file keeps only hashes, and a
    // token nobody else ever saw cannot leak.
    const agent = rotateAgentToken(tokensPath);

    const store = openStore(options.dataDir, { log: (msg, fields) => log.info(msg, fields) });
    const agentMetrics = createAgentMetrics({ nodeName: options.nodeName, includeHost: options.includeHost ?? false });
    const collectorMetrics = createCollectorMetrics();
    const collector = await startCollector({
      store,
      ownsStore: true,
      host: options.listen.host,
      port: options.listen.port,
      tokens: agent.entries,
      version: packageVersion(),
      log,
      metrics: collectorMetrics,
      extraRoutes: [
        {
          method: 'GET',
          path: '/metrics',
          // Names and numbers only, no command lines: scraped like any exporter.
          scope: null,
          handle: async () => ({
            status: 200,
            contentType: agentMetrics.contentType,
            text: `${await collectorMetrics.render()}\n${await agentMetrics.render()}`,
          }),
        },
      ],
    });
    // Heap snapshots wait here for the collector; the capture side hands its files to it (SnapshotSink).
    const late: LateBound = { runtime: null, probes: null };
    const snapshotSpool = createSnapshotSpool({ spoolDir: join(options.dataDir, 'spool'), maxBytes: options.snapshotSpoolMaxBytes, log });
    const runtime = startAgent({
      nodeName: options.nodeName,
      version: packageVersion(),
      intervalSec: options.interval,
      sampler: { procRoot: options.procRoot, cgroupRoot: options.cgroupRoot, podLogRoot: options.podLogRoot },
      kmsgPath: options.kmsg === false ? null : options.kmsg,
      includeHost: options.includeHost ?? false,
      collector: { url: collector.url, token: agent.token },
      spoolDir: join(options.dataDir, 'spool'),
      snapshotSpool,
      capture: captureOption(options, snapshotSpool, late),
      log,
      onPass: (pass) => {
        if (pass.sample) agentMetrics.update(pass.sample, pass.openFindings, pass.durationMs, { events: pass.events });
      },
    });

    late.runtime = runtime;
    let probes: Awaited<ReturnType<typeof startProbeOption>> = null;
    try {
      probes = await startProbeOption(options, options.procRoot, log);
      late.probes = probes;
    } catch (err) {
      await runtime.close({ flushMs: 0 });
      await collector.close();
      stop.dispose();
      process.stderr.write(`leakwatch up: --probe-socket: ${(err as Error).message}\n`);
      process.exitCode = 2;
      return;
    }
    const lines = [
      `leakwatch is up: collector ${collector.url} with an agent for node ${options.nodeName}`,
      `web page: ${collector.url}/   (sign in with the admin token below, or any token with the read scope)`,
      firstRun
        ? `admin token (shown once; also saved to ${join(options.dataDir, 'local-token')} for commands run from this directory):\n  ${adminToken}`
        : `admin token: in ${join(options.dataDir, 'local-token')} (made at the first start)`,
      'in another terminal:  npx leakwatch findings      (what the agent found)',
      '                      npx leakwatch demo data-processor   (replay a seed incident in a fake pod)',
      `metrics: ${collector.url}/metrics   Ctrl-C to stop`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (options.dataDir !== '.leakwatch' && firstRun) process.stdout.write(`(commands look for ${LOCAL_TOKEN_FILE}; from elsewhere pass --token)\n`);

    const signal = await stop.first;
    log.info('stopping', { signal });
    stop.onSecond(() => log.warn('second signal; exiting without flushing'));
    await runtime.close({ flushMs: 2000 });
    await probes?.close();
    await collector.close();
    process.exitCode = 0;
    setTimeout(() => process.exit(0), 2000).unref();
  });
}

/** Replaces the local agent's token entry with a new one and returns it with all entries. */
function rotateAgentToken(tokensPath: string): { token: string; entries: TokenEntry[] } {
  const others = loadTokensFile(tokensPath).filter((e) => e.name !== LOCAL_AGENT);
  writeTokensFile(tokensPath, others);
  const { token } = createTokenInFile(tokensPath, LOCAL_AGENT, ['agent']);
  return { token, entries: loadTokensFile(tokensPath) };
}
