import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stderr (stdout stays free for command output). */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino({ name: options.name ?? 'sampleloop', level: options.level ?? process.env.SAMPLELOOP_LOG_LEVEL ?? 'info' }, pino.destination(2));
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
