import type { Logger } from './logger.js';

/** Where a dead letter came from: enough to find it in the dead-letter topic, never its payload. */
export interface DeadLetterLogEntry {
  reasonCode: string;
  reason: string;
  topic: string;
  partition: number;
  offset: number;
  stage: string;
  task: string;
}

export interface DeadLetterLogOptions {
  /** Dead letters logged per reason code and interval; the rest are counted in one summary line. */
  perReason: number;
  intervalMs: number;
  now?: () => number;
}

const DEFAULTS: DeadLetterLogOptions = { perReason: 10, intervalMs: 60_000 };

/**
 * Logs each dead letter at `warn` (reason code and reason, source topic, partition, offset; never
 * the payload), at most `perReason` per reason code and interval: past that, a bad producer's flood
 * is summed up in one line per reason when the interval ends (or at the next dead letter after it).
 */
export class DeadLetterLog {
  private windowStart: number;
  private readonly logged = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    private readonly logger: Logger,
    private readonly options: DeadLetterLogOptions = DEFAULTS,
  ) {
    this.now = options.now ?? Date.now;
    this.windowStart = this.now();
  }

  record(entry: DeadLetterLogEntry): void {
    if (this.now() - this.windowStart >= this.options.intervalMs) this.flush();
    const n = this.logged.get(entry.reasonCode) ?? 0;
    if (n < this.options.perReason) {
      this.logged.set(entry.reasonCode, n + 1);
      this.logger.warn({ ...entry }, 'dead letter: record sent to the dead-letter topic');
      return;
    }
    this.suppressed.set(entry.reasonCode, (this.suppressed.get(entry.reasonCode) ?? 0) + 1);
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), Math.max(0, this.windowStart + this.options.intervalMs - this.now()));
      this.timer.unref();
    }
  }

  /** Writes the summary of the dead letters not logged one by one and starts a new interval. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const seconds = Math.round((this.now() - this.windowStart) / 1000);
    for (const [reasonCode, count] of this.suppressed) {
      this.logger.warn({ reasonCode, count, logged: this.logged.get(reasonCode) ?? 0, seconds }, `dead letters: ${count} more with reason ${reasonCode} not logged one by one (rate limit: ${this.options.perReason} per ${this.options.intervalMs / 1000} s)`);
    }
    this.suppressed.clear();
    this.logged.clear();
    this.windowStart = this.now();
  }
}

const byLogger = new WeakMap<Logger, DeadLetterLog>();

/** One rate limit per logger, shared by the tasks of a runtime. */
export function deadLetterLogFor(logger: Logger): DeadLetterLog {
  let log = byLogger.get(logger);
  if (log === undefined) {
    log = new DeadLetterLog(logger);
    byLogger.set(logger, log);
  }
  return log;
}
