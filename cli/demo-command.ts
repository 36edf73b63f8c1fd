/** `sampleloop demo`: registration only; the demo itself (cli/demo.ts) loads when the command runs. */
import { Option, type Command } from 'commander';
import { UsageError } from '../engine/errors.js';

function nonNegativeInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || String(n) !== value.trim()) throw new UsageError(`${name} must be a non-negative integer, got "${value}"`);
  return n;
}

/** `demo --serve`: the dashboard stays up until SIGINT / SIGTERM. */
function untilInterrupted(url: string, out: (line: string) => void): Promise<void> {
  out(`dashboard: ${url} (the engine keeps serving it; Ctrl-C to stop)`);
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

export function registerDemoCommand(program: Command, out: (line: string) => void): void {
  program
    .command('demo')
    .description('the closed loop on the embedded default: real ONNX models serve traffic, feedback becomes samples, retraining promotes better models')
    .option('-d, --data-dir <dir>', 'where the demo keeps its data: a new or empty directory (default: a fresh temporary one)')
    .option('--requests <n>', 'number of simulated requests (default: every row of both traffic pools)')
    .option('--seed <n>', 'random seed of the simulated traffic', '7')
    .option('--chart <path>', 'where to write the accuracy chart (HTML; default <data-dir>/accuracy.html)')
    .addOption(new Option('--quiet', 'print only the summary'))
    .option('--serve', 'serve the live dashboard of the demo\'s engine and keep it up after the summary until Ctrl-C')
    .option('--http-port <n>', 'port of the dashboard with --serve (default 9464; 0 = any free port)', '9464')
    .action(async (opts: { dataDir?: string; requests?: string; seed: string; chart?: string; quiet?: boolean; serve?: boolean; httpPort: string }) => {
      const requests = opts.requests !== undefined ? nonNegativeInt(opts.requests, '--requests') : undefined;
      const seed = nonNegativeInt(opts.seed, '--seed');
      const port = nonNegativeInt(opts.httpPort, '--http-port');
      const { runDemo } = await import('./demo.js');
      await runDemo({
        ...(opts.serve ? { dashboard: { port, afterTraffic: (url: string) => untilInterrupted(url, out) } } : {}),
        ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
        ...(requests !== undefined ? { requests } : {}),
        ...(opts.chart ? { chartPath: opts.chart } : {}),
        seed,
        quiet: opts.quiet ?? false,
        out,
      });
    });
}
