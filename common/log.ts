// Logs of long-running services: one JSON object per line on stderr, {"level","msg","at",...fields},
// so a log shipper can parse them without a grammar. Secrets must never reach a log line: any
// field whose name says it holds a credential is replaced, at any depth, before it is written.

export type LogLevel = 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export const REDACTED = '[redacted]';
/** Field names (case-insensitive) whose values are credentials. */
const SECRET_FIELD = /^(token|authorization|password|secret|cookie)$/i;
const MAX_DEPTH = 6;

export function createLogger(stream: { write(chunk: string): unknown } = process.stderr): Logger {
  const write = (level: LogLevel, msg: string, fields?: LogFields): void => {
    const line: LogFields = { level, msg, at: Date.now() };
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        // The envelope's keys are not the caller's to overwrite.
        if (k === 'level' || k === 'msg' || k === 'at') continue;
        line[k] = redact(k, v, 0);
      }
    }
    let text: string;
    try {
      text = JSON.stringify(line, errorReplacer);
    } catch {
      text = JSON.stringify({ level, msg, at: line.at, logError: 'fields could not be serialised' });
    }
    try {
      stream.write(`${text}\n`);
    } catch {
      // A closed stderr must not take the service down with it.
    }
  };
  return {
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
  };
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} };

function redact(key: string, value: unknown, depth: number): unknown {
  if (SECRET_FIELD.test(key)) return REDACTED;
  if (value === null || typeof value !== 'object' || value instanceof Error) return value;
  if (depth >= MAX_DEPTH) return '[deep]';
  if (Array.isArray(value)) return value.map((v) => redact('', v, depth + 1));
  const out: LogFields = {};
  for (const [k, v] of Object.entries(value)) out[k] = redact(k, v, depth + 1);
  return out;
}

/** Errors serialise to {} by default; a log line wants their message. */
function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === 'bigint') return value.toString();
  return value;
}
