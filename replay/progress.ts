export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  /** Print at all (the CLI: stderr is a TTY, or `--progress`). */
  enabled: boolean;
  intervalMs: number;
  stream: ProgressStream;
  now?: () => number;
}

export interface ProgressPhase {
  label: string;
  /** What `done` counts: bytes of input files, or records. */
  unit: 'bytes' | 'records';
  total: number;
  startedAt: number;
  done: number;
  records: number;
}

/**
 * One status line per phase on stderr: share done, records, rate and ETA (from bytes read / total
 * bytes while reading, from records otherwise). On a TTY the line is rewritten in place; otherwise
 * a new line is printed at most once per interval.
 */
export class ReplayProgress {
  private phase: ProgressPhase | undefined;
  private lastPrint = 0;
  private readonly now: () => number;

  constructor(private readonly options: ProgressOptions) {
    this.now = options.now ?? Date.now;
  }

  start(label: string, unit: ProgressPhase['unit'], total: number): void {
    this.end();
    this.phase = { label, unit, total, startedAt: this.now(), done: 0, records: 0 };
    this.lastPrint = 0;
  }

  update(done: number, records: number): void {
    const phase = this.phase;
    if (!phase || !this.options.enabled) return;
    phase.done = done;
    phase.records = records;
    const now = this.now();
    if (now - this.lastPrint < this.options.intervalMs) return;
    this.lastPrint = now;
    this.print(phase, now, false);
  }

  /** Prints the phase's final line (if enabled) and closes it. */
  end(): void {
    const phase = this.phase;
    this.phase = undefined;
    if (!phase || !this.options.enabled) return;
    this.print(phase, this.now(), true);
  }

  /** Closes the phase without a final line (the run failed); on a TTY ends the line so an error prints below it. */
  stop(): void {
    const phase = this.phase;
    this.phase = undefined;
    if (phase && this.options.enabled && this.options.stream.isTTY && this.lastPrint > 0) this.options.stream.write('\n');
  }

  private print(phase: ProgressPhase, now: number, final: boolean): void {
    const line = formatProgress(phase, now, final);
    if (this.options.stream.isTTY) this.options.stream.write(`\r${line}\u001b[K${final ? '\n' : ''}`);
    else this.options.stream.write(`${line}\n`);
  }
}

export function formatProgress(phase: ProgressPhase, now: number, final: boolean): string {
  const seconds = Math.max((now - phase.startedAt) / 1000, 1e-3);
  const share = phase.total > 0 ? Math.min(phase.done / phase.total, 1) : 1;
  const parts = [`replay ${phase.label}`];
  parts.push(`${(share * 100).toFixed(1)}%`);
  parts.push(phase.unit === 'bytes' ? `${megabytes(phase.done)}/${megabytes(phase.total)} MB` : `${count(phase.done)}/${count(phase.total)}`);
  parts.push(`${count(phase.records)} records`);
  parts.push(`${count(phase.records / seconds)} records/s`);
  if (final) parts.push(`done in ${duration(seconds)}`);
  else if (share > 0 && share < 1) parts.push(`ETA ${duration((seconds * (1 - share)) / share)}`);
  return parts.join(' · ');
}

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
