// `leakwatch collector`: the collector as a long-running service. Logs are JSON lines on stderr;
// /metrics (no token) for Prometheus; SIGTERM/SIGINT drain and exit 0; retention runs at start and hourly.
import { InvalidArgumentError, type Command } from 'commander';
import { existsSync, mkdirSync } from 'node:fs';
import { createLogger } from '../../common/log.js';
import { loadTokensFile } from '../../server/auth.js';
import { startCollector } from '../../server/collector.js';
import { createCollectorMetrics, metricsRoute } from '../../server/metrics.js';
import { openStore } from '../../server/store/sqlite-store.js';
import type { RetentionPolicy, Store } from '../../server/store/types.js';
import { packageVersion } from '../package-info.js';
import { defaultDataDir, tokensFilePath } from './tokens.js';
import { watchStopSignals } from '../stop-signals.js';

const RETENTION_PERIOD_MS = 60 * 60 * 1000;

interface CollectorCliOptions {
  listen?: { host: string; port: number };
  dataDir: string;
  tokensFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  maxPayload: number;
  ingestBudget: number;
  retentionAge: number;
  retentionBytes: number;
  snapshotRetentionAge?: number;
  snapshotRetentionBytes?: number;
  maxSnapshot: number;
  drainDelay: number;
}

/** "127.0.0.1:7070", "[::1]:7070", "0.0.0.0:0" → host and port. */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`expected host:port (e.g. 127.0.0.1:7070 or [::1]:7070), got "${value}"`);
  return { host: m[1] ?? m[2]!, port };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "7d", "12h", "90m", "30s" → milliseconds. */
export function parseDurationMs(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/.exec(value.trim());
  const ms = m ? Number(m[1]) * DURATION_UNITS[m[2]!]! : NaN;
  if (!Number.isFinite(ms) || ms <= 0) throw new InvalidArgumentError(`expected a duration like 7d, 12h or 30m, got "${value}"`);
  return Math.round(ms);
}

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  k: 1024, kb: 1000, kib: 1024,
  m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4,
};

/** "10GiB", "500MB", "16777216" → bytes. */
export function parseByteSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(value.trim());
  const unit = m ? (m[2] ? BYTE_UNITS[m[2].toLowerCase()] : 1) : undefined;
  const bytes = m && unit ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new InvalidArgumentError(`expected a size like 16777216, 512KiB or 10GiB, got "${value}"`);
  return bytes;
}

function nonNegativeMs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected milliseconds (an integer >= 0), got "${value}"`);
  return n;
}

export function registerCollector(program: Command): void {
  program
    .command('collector')
    .description('run the collector: agents connect over WebSocket, engineers read findings over the HTTP API')
    .option('--listen <host:port>', 'address to listen on (env LEAKWATCH_LISTEN; default 127.0.0.1:7070)', parseListen)
    .option('--data-dir <dir>', 'where the database and evidence live (env LEAKWATCH_DATA_DIR)', defaultDataDir())
    .option('--tokens-file <path>', 'JSON tokens file (env LEAKWATCH_TOKENS_FILE; default <data-dir>/tokens.json)')
    .option('--tls-cert <path>', 'PEM certificate: serve https and wss (needs --tls-key)')
    .option('--tls-key <path>', 'PEM private key for --tls-cert')
    .option('--max-payload <bytes>', 'largest WebSocket frame accepted from an agent', parseByteSize, 16 * 1024 * 1024)
    .option('--ingest-budget <size>', 'agent batches held in memory for the store before reading from agents pauses (backpressure)', parseByteSize, 8 * 1024 * 1024)
    .option('--retention-age <duration>', 'delete findings resolved longer ago than this (e.g. 7d)', parseDurationMs, parseDurationMs('7d'))
    .option('--retention-bytes <size>', 'keep evidence and snapshot files under this total (e.g. 10GiB)', parseByteSize, parseByteSize('10GiB'))
    .option('--snapshot-retention-age <duration>', 'delete heap snapshots stored longer ago than this (default: --retention-age)', parseDurationMs)
    .option('--snapshot-retention-bytes <size>', 'keep heap snapshot files under this total, oldest deleted first (default: --retention-bytes)', parseByteSize)
    .option('--max-snapshot <size>', 'largest heap snapshot an agent may upload', parseByteSize, parseByteSize('16GiB'))
    .option('--drain-delay <ms>', 'on SIGTERM, report not-ready this long before closing (for load balancers)', nonNegativeMs, 0)
    .action(async (options: CollectorCliOptions) => {
      let listen = options.listen;
      try {
        // The environment is read here, not at registration, so a bad value fails this command only.
        listen ??= parseListen(process.env.LEAKWATCH_LISTEN || '127.0.0.1:7070');
      } catch (err) {
        fail(`LEAKWATCH_LISTEN: ${(err as Error).message}`, 2);
        return;
      }
      if (Boolean(options.tlsCert) !== Boolean(options.tlsKey)) {
        fail('--tls-cert and --tls-key go together: give both or neither', 2);
        return;
      }
      const tokensPath = tokensFilePath(options);
      if (!existsSync(tokensPath)) {
        fail(`no tokens file at ${tokensPath}; create one with: leakwatch tokens create --name <name> --scopes agent,read --tokens-file ${tokensPath}`, 2);
        return;
      }
      const log = createLogger();
      const tokens = loadTokensFile(tokensPath, { warn: (m) => log.warn(m) });
      if (tokens.length === 0) {
        fail(`the tokens file ${tokensPath} has no tokens; add one with: leakwatch tokens create --name <name> --scopes agent,read --tokens-file ${tokensPath}`, 2);
        return;
      }
      mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
      const stop = watchStopSignals();
      const store: Store = openStore(options.dataDir, { log: (msg, fields) => log.warn(msg, fields) });
      const policy: RetentionPolicy = {
        maxAgeMs: options.retentionAge,
        maxBlobBytes: options.retentionBytes,
        ...(options.snapshotRetentionAge !== undefined ? { maxSnapshotAgeMs: options.snapshotRetentionAge } : {}),
        ...(options.snapshotRetentionBytes !== undefined ? { maxSnapshotBytes: options.snapshotRetentionBytes } : {}),
      };
      const retain = (): void => {
        try {
          const r = store.applyRetention(policy, Date.now(), (msg, fields) => log.info(msg, fields));
          log.info('retention applied', { ...r, maxAgeMs: policy.maxAgeMs, maxBlobBytes: policy.maxBlobBytes });
        } catch (err) {
          log.error('retention failed', { error: err instanceof Error ? err.message : String(err) });
        }
      };
      const metrics = createCollectorMetrics();
      let collector;
      try {
        retain();
        collector = await startCollector({
          store,
          ownsStore: true,
          host: listen.host,
          port: listen.port,
          ...(options.tlsCert && options.tlsKey ? { tls: { cert: options.tlsCert, key: options.tlsKey } } : {}),
          tokens,
          maxPayloadBytes: options.maxPayload,
          snapshots: { maxSnapshotBytes: options.maxSnapshot },
          ingestBudgetBytes: options.ingestBudget,
          drainDelayMs: options.drainDelay,
          version: packageVersion(),
          log,
          metrics,
          extraRoutes: [metricsRoute(metrics)],
        });
      } catch (err) {
        store.close();
        stop.dispose();
        throw err;
      }
      const retention = setInterval(retain, RETENTION_PERIOD_MS);
      retention.unref();
      const signal = await stop.first;
      log.info('signal received; draining', { signal });
      // A second signal means "now": skip the drain.
      stop.onSecond(() => log.warn('second signal; exiting without draining'));
      clearInterval(retention);
      await collector.close();
      process.exitCode = 0;
      // Anything still holding the event loop open after a clean close is not worth waiting for.
      setTimeout(() => process.exit(0), 2000).unref();
    });
}

function fail(message: string, exitCode: number): void {
  process.stderr.write(`leakwatch collector: ${message}\n`);
  process.exitCode = exitCode;
}
