/** The project's cached Python environment (scripts/python-env.sh): pyarrow, scikit-learn, skl2onnx. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './dist.js';

/** Creates the venv on first use (a minute or two: pip from PyPI), then returns its python. */
export function pythonEnv(): string {
  const result = spawnSync('bash', [join(ROOT, 'scripts', 'python-env.sh')], { encoding: 'utf8', timeout: 15 * 60_000 });
  if (result.status !== 0) throw new Error(`scripts/python-env.sh failed (${result.status}): ${result.stderr}`);
  return result.stdout.trim();
}

export function runPython(python: string, script: string, args: string[] = [], env: Record<string, string> = {}): string {
  const result = spawnSync(python, ['-c', script, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env }, maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`python failed (${result.status}): ${result.stderr}`);
  return result.stdout;
}
