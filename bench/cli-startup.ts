/**
 * How fast the CLI answers (docs/benchmarks.md, "CLI start-up"): wall time of `node -e 0`, `sampleloop
 * --help`, `sampleloop --version`, and `sampleloop produce` of one record to a running engine (embedded,
 * through its HTTP API). Runs are interleaved (bare node, --help, --version, ...) so machine load
 * falls on all of them alike; the median of each is reported with the 1-minute load average.
 *
 *   npm run build && node dist/bench/cli-startup.js [--runs 15] [--out bench/results/cli-startup.json | --no-write]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../config/paths.js';
import { isMainModule, machineInfo, resultPath, writeResult, type MachineInfo } from './measure.js';

export interface StartupResult {
  runs: number;
  loadAverageBefore: number[];
  loadAverageAfter: number[];
  medianMs: { bareNode: number; help: number; version: number; produceOne: number };
  ratios: { helpOverBareNode: number; versionOverBareNode: number };
  targets: { helpAndVersionOverBareNode: number; produceOneMs: number };
  met: { help: boolean; version: boolean; produceOne: boolean };
  machine: MachineInfo;
  measuredAt: string;
}

function timeMs(args: string[], input?: string): number {
  const started = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: packageRoot(), encoding: 'utf8', input: input ?? '', env: cleanEnv() });
  const ms = performance.now() - started;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SAMPLELOOP')));
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

async function startEngine(dataDir: string): Promise<ChildProcess> {
  const bin = join(packageRoot(), 'bin', 'sampleloop.js');
  const engine = spawn(process.execPath, [bin, 'run', '--data-dir', dataDir, '--http-port', '0'], { env: cleanEnv(), stdio: ['ignore', 'ignore', 'ignore'] });
  const info = join(dataDir, 'engine.json');
  const written = (): boolean => existsSync(info) && readFileSync(info, 'utf8').trim().endsWith('}');
  for (let waited = 0; !written(); waited += 100) {
    if (waited > 60_000) {
      engine.kill('SIGTERM');
      throw new Error('the engine did not start within 60 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return engine;
}

export async function runCliStartupBench(runs: number): Promise<StartupResult> {
  const bin = join(packageRoot(), 'bin', 'sampleloop.js');
  const loadAverageBefore = loadavg();
  const times = { bareNode: [] as number[], help: [] as number[], version: [] as number[], produceOne: [] as number[] };
  const dataDir = mkdtempSync(join(tmpdir(), 'sampleloop-cli-bench-'));
  const engine = await startEngine(dataDir);
  try {
    timeMs([bin, '--version']); // warm the file cache once
    for (let i = 0; i < runs; i++) {
      times.bareNode.push(timeMs(['-e', '0']));
      times.help.push(timeMs([bin, '--help']));
      times.version.push(timeMs([bin, '--version']));
      const record = JSON.stringify({ requestId: `bench-${i}`, category: 'bench', features: { x: i }, attributes: {}, timestamp: Date.now(), source: 'bench' });
      times.produceOne.push(timeMs([bin, 'produce', 'requests', '--data-dir', dataDir], `${record}\n`));
    }
  } finally {
    engine.kill('SIGTERM');
    await new Promise((r) => engine.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
  const medianMs = { bareNode: median(times.bareNode), help: median(times.help), version: median(times.version), produceOne: median(times.produceOne) };
  const ratios = { helpOverBareNode: medianMs.help / medianMs.bareNode, versionOverBareNode: medianMs.version / medianMs.bareNode };
  const targets = { helpAndVersionOverBareNode: 2, produceOneMs: 300 };
  return {
    runs,
    loadAverageBefore,
    loadAverageAfter: loadavg(),
    medianMs,
    ratios,
    targets,
    met: { help: ratios.helpOverBareNode <= targets.helpAndVersionOverBareNode, version: ratios.versionOverBareNode <= targets.helpAndVersionOverBareNode, produceOne: medianMs.produceOne <= targets.produceOneMs },
    machine: machineInfo(),
    measuredAt: new Date().toISOString(),
  };
}

if (isMainModule(import.meta.url)) {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' }, out: { type: 'string' }, 'no-write': { type: 'boolean', default: false } } });
  const result = await runCliStartupBench(Number(values.runs));
  const m = result.medianMs;
  process.stdout.write(
    `median of ${result.runs} (load average ${result.loadAverageBefore.map((x) => x.toFixed(2)).join(' ')} → ${result.loadAverageAfter.map((x) => x.toFixed(2)).join(' ')}):\n` +
      `  node -e 0              ${m.bareNode.toFixed(0)} ms\n` +
      `  sampleloop --help      ${m.help.toFixed(0)} ms  (${result.ratios.helpOverBareNode.toFixed(2)}x bare node; target <= 2x: ${result.met.help ? 'met' : 'NOT met'})\n` +
      `  sampleloop --version   ${m.version.toFixed(0)} ms  (${result.ratios.versionOverBareNode.toFixed(2)}x bare node; target <= 2x: ${result.met.version ? 'met' : 'NOT met'})\n` +
      `  produce 1 record       ${m.produceOne.toFixed(0)} ms  (to a running engine; target <= 300 ms: ${result.met.produceOne ? 'met' : 'NOT met'})\n`,
  );
  if (!values['no-write']) writeResult(values.out ?? resultPath('cli-startup'), result);
}
