/**
 * Tests that run the compiled CLI or workers need an up-to-date dist/: build it when any source is
 * newer than its output. A lock directory keeps test files running in parallel from building at once.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The source folders `npm run build` compiles (tsconfig.build.json's include). */
export const BUILD_DIRS: readonly string[] = (JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] }).include;

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTs(path));
    else if (path.endsWith('.ts') && !path.endsWith('.d.ts') && !path.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

function distIsStale(): boolean {
  for (const dir of BUILD_DIRS) {
    if (!existsSync(join(ROOT, dir))) continue;
    for (const file of listTs(join(ROOT, dir))) {
      const out = join(ROOT, 'dist', relative(ROOT, file)).replace(/\.ts$/, '.js');
      const built = statSync(out, { throwIfNoEntry: false });
      if (!built || built.mtimeMs < statSync(file).mtimeMs) return true;
    }
  }
  return false;
}

/** Builds dist/ when stale; a lock directory keeps test files running in parallel from building at once. */
export async function ensureBuilt(): Promise<void> {
  if (!distIsStale()) return;
  const lock = join(tmpdir(), 'sampleloop-dist-build.lock');
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      const held = statSync(lock, { throwIfNoEntry: false });
      if (held && Date.now() - held.mtimeMs > 120_000) rmSync(lock, { recursive: true, force: true });
      await sleep(200);
    }
  }
  try {
    // Type errors elsewhere in the tree (work in progress) do not stop tsc from emitting.
    if (distIsStale()) spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'ignore' });
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
  expect(existsSync(join(ROOT, 'dist', 'cli', 'main.js'))).toBe(true);
}

