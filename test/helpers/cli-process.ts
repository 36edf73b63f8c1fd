/** Running the compiled CLI (`bin/sampleloop.js`) as a child process, for end-to-end tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from './dist.js';

export const BIN = join(ROOT, 'bin', 'sampleloop.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The test's own environment without sampleloop settings a developer may have exported. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SAMPLELOOP')) env[k] = v;
  return { ...env, ...extra };
}

export function startCli(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: cleanEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs the CLI to its end (killed after `timeoutMs`, default 30 s); `input` goes to its stdin. */
export function cli(args: string[], options: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = startCli(args, options.env);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin!.end(options.input ?? '');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sampleloop ${args.join(' ')} did not finish within ${options.timeoutMs ?? 30_000} ms; stderr: ${stderr}`));
    }, options.timeoutMs ?? 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      // 'exit' can precede the last 'data' events of the pipes; 'close' cannot.
      if (child.stdout!.readableEnded && child.stderr!.readableEnded) resolve({ code, stdout, stderr });
      else child.once('close', () => resolve({ code, stdout, stderr }));
    });
  });
}

export function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Polls `probe` every 150 ms until it gives a value. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(150);
  }
}

/**
 * Starts `run` on dataDir (any free HTTP port) and waits for its engine.json; `children` collects the
 * process so the suite can kill it in afterAll. `stop` sends SIGTERM and resolves the exit code.
 */
export async function startEngine(dataDir: string, children: ChildProcess[], env: Record<string, string> = {}): Promise<{ url: string; stop: () => Promise<number | null> }> {
  const engine = startCli(['run', '--data-dir', dataDir, '--http-port', '0'], env);
  children.push(engine);
  engine.stderr!.resume();
  const exited = new Promise<number | null>((resolve) => engine.once('exit', (code) => resolve(code)));
  const infoPath = join(dataDir, 'engine.json');
  const info = await waitFor('engine.json', () => (existsSync(infoPath) ? (JSON.parse(readFileSync(infoPath, 'utf8')) as { url: string }) : undefined));
  return {
    url: info.url,
    stop: async () => {
      engine.kill('SIGTERM');
      return exited;
    },
  };
}
