// `leakwatch tokens create`: make a bearer token, keep only its sha256 in the tokens file and
// print the token once. Whoever runs this is the only one who ever sees it.
import { InvalidArgumentError, type Command } from 'commander';
import { join } from 'node:path';
import { createTokenInFile, parseScopes, SCOPES, type Scope } from '../../server/auth.js';

export function defaultDataDir(): string {
  return process.env.LEAKWATCH_DATA_DIR || './.leakwatch';
}

/** The tokens file a collector uses: --tokens-file, else LEAKWATCH_TOKENS_FILE, else <data-dir>/tokens.json. */
export function tokensFilePath(options: { tokensFile?: string; dataDir?: string }): string {
  return options.tokensFile || process.env.LEAKWATCH_TOKENS_FILE || join(options.dataDir ?? defaultDataDir(), 'tokens.json');
}

function scopesArgument(value: string): Scope[] {
  try {
    return parseScopes(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

interface CreateOptions {
  name: string;
  scopes: Scope[];
  tokensFile?: string;
  dataDir?: string;
}

export function registerTokens(program: Command): void {
  const tokens = program.command('tokens').description('manage the bearer tokens agents and engineers use with the collector');
  tokens
    .command('create')
    .description('create a token, store its sha256 in the tokens file and print the token once')
    .requiredOption('--name <name>', 'what the token is for (shown in logs and the audit log)')
    .requiredOption('--scopes <list>', `comma-separated scopes: ${SCOPES.join(', ')} (admin implies all)`, scopesArgument)
    .option('--tokens-file <path>', 'tokens file (env LEAKWATCH_TOKENS_FILE; default <data-dir>/tokens.json)')
    .option('--data-dir <dir>', 'collector data directory (env LEAKWATCH_DATA_DIR; default ./.leakwatch)')
    .action((options: CreateOptions) => {
      const path = tokensFilePath(options);
      const { token } = createTokenInFile(path, options.name, options.scopes, {
        warn: (m) => process.stderr.write(`leakwatch: ${m}\n`),
      });
      process.stdout.write(`${token}\n`);
      process.stderr.write(`leakwatch tokens: created "${options.name}" (${options.scopes.join(',')}) in ${path}; the token above is shown only once\n`);
    });
}
