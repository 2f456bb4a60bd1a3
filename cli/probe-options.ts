// `--probe-socket` for `leakwatch agent` and `leakwatch up`: the opt-in in-process probe's unix
// socket (targets run with `node --require leakwatch/probe`). Off unless given. The token is made
// fresh at every start and written 0600 beside the socket as probe.token, unless
// --probe-token-file names one (e.g. a mounted Secret shared with the targets).
import type { Command } from 'commander';
import type { Logger } from '../common/log.js';
import { prepareProbeToken, startProbeServer, type ProbeServer } from '../agent/capture/probe-server.js';

export interface ProbeCliOptions {
  probeSocket?: string;
  probeTokenFile?: string;
}

export function addProbeOptions(command: Command): Command {
  return command
    .option('--probe-socket <path>', 'listen for in-process probes (node --require leakwatch/probe) on this unix socket, e.g. /run/leakwatch/probe.sock (env LEAKWATCH_PROBE_SOCKET)', process.env.LEAKWATCH_PROBE_SOCKET)
    .option('--probe-token-file <path>', 'token the probes must present (default: a new one per start, written 0600 beside the socket as probe.token)');
}

/** Null when no socket was asked for; throws with a one-line reason when it cannot listen. */
export async function startProbeOption(options: ProbeCliOptions, procRoot: string, log: Logger): Promise<ProbeServer | null> {
  if (!options.probeSocket) {
    if (options.probeTokenFile) throw new Error('--probe-token-file needs --probe-socket');
    return null;
  }
  let token: string;
  let tokenPath: string;
  try {
    ({ token, tokenPath } = prepareProbeToken(options.probeSocket, options.probeTokenFile));
  } catch (err) {
    throw new Error(`probe token: ${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`.trim());
  }
  const server = await startProbeServer({ socketPath: options.probeSocket, token, procRoot, log });
  log.info('probe token', { tokenPath });
  return server;
}
