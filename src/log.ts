import { pino, type Logger } from 'pino';

export type { Logger };

/** Creates the root logger: JSON lines on stdout, written synchronously so that lines logged just before process.exit() are not lost. */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino(
    {
      level: level === 'none' ? 'silent' : level,
      base: { pid: process.pid, ...bindings },
      // Tokens and keys may appear in request headers; they are never logged.
      redact: { paths: ['token', 'api_key', 'headers.authorization', 'headers["x-api-key"]'], censor: '[redacted]' },
    },
    pino.destination({ fd: 1, sync: true }),
  );
}
