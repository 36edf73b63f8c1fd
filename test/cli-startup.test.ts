/**
 * `--help` and `--version` must not load the native modules (RocksDB, onnxruntime, librdkafka) nor
 * the configuration schema: every module the CLI resolves is logged by a module-resolution hook in
 * the child process (ESM and the CommonJS requires inside packages alike), and the test reads that log.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from './helpers/dist.js';
import { BIN, cleanEnv } from './helpers/cli-process.js';

const NATIVE = ['@nxtedition/rocksdb', '/rocksdb/', 'onnxruntime-node', '@confluentinc/kafka-javascript'];

// Logs every resolved module URL (and every CommonJS require) to $SAMPLELOOP_TRACE_FILE.
const HOOK = `
import { appendFileSync } from 'node:fs';
import Module, { register } from 'node:module';
const file = process.env.SAMPLELOOP_TRACE_FILE;
register('data:text/javascript,' + encodeURIComponent(\`
  import { appendFileSync } from 'node:fs';
  export async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(\${JSON.stringify(process.env.SAMPLELOOP_TRACE_FILE)}, r.url + '\\\\n'); return r; }
\`));
const load = Module._load;
Module._load = function (request, parent, isMain) { appendFileSync(file, 'require:' + request + '\\n'); return load.call(this, request, parent, isMain); };
`;

let dir: string;

beforeAll(async () => {
  await ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'sampleloop-startup-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function loadedBy(args: string[]): { modules: string[]; status: number | null; stdout: string } {
  const trace = join(dir, `trace-${Math.random().toString(36).slice(2)}.log`);
  const result = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(HOOK)}`, BIN, ...args], {
    cwd: ROOT,
    env: cleanEnv({ SAMPLELOOP_TRACE_FILE: trace }),
    encoding: 'utf8',
    timeout: 60_000,
  });
  let modules: string[] = [];
  try {
    modules = readFileSync(trace, 'utf8').split('\n').filter((l) => l.length > 0);
  } catch {
    // nothing resolved
  }
  return { modules, status: result.status, stdout: result.stdout };
}

describe('CLI start-up loads only what the command needs', () => {
  it.each([['--help'], ['--version'], ['models', '--help'], ['produce', '--help'], ['export', 'samples', '--help']])('%s loads no native module and not the configuration schema', (...args) => {
    const { modules, status, stdout } = loadedBy(args);
    expect(status).toBe(0);
    expect(stdout.length).toBeGreaterThan(0);
    expect(modules.some((m) => m.includes('/dist/cli/main.js'))).toBe(true); // the hook saw the CLI load
    expect(modules.filter((m) => NATIVE.some((n) => m.includes(n)))).toEqual([]);
    expect(modules.filter((m) => m.includes('/zod/') || m.includes('/dist/config/config.js'))).toEqual([]);
  });

  it('a command that opens the log does load RocksDB (the trace sees native modules)', () => {
    const { modules, status } = loadedBy(['produce', 'requests', '--data-dir', join(dir, 'data'), '--file', join(ROOT, 'package.json'), '--format', 'jsonl']);
    expect(status).toBe(0);
    expect(modules.some((m) => m.includes('@nxtedition/rocksdb'))).toBe(true);
  });
});
