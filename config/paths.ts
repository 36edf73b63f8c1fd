import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../engine/errors.js';

const PACKAGE_NAME = 'sampleloop';

let cachedRoot: string | undefined;

/**
 * The directory holding sampleloop's package.json. Found by walking up from this module, so it is
 * the same whether the code runs from the TS sources (vitest) or from compiled `dist/`.
 */
export function packageRoot(): string {
  if (cachedRoot !== undefined) return cachedRoot;
  const start = dirname(fileURLToPath(import.meta.url));
  let dir = start;
  for (;;) {
    if (isSampleloopPackage(join(dir, 'package.json'))) {
      cachedRoot = dir;
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new ConfigError(`cannot find the package.json of "${PACKAGE_NAME}" in ${start} or any directory above it`);
    }
    dir = parent;
  }
}

/** Directory of the `.avsc` files (they are read from the package, not copied into `dist/`). */
export function schemaDir(): string {
  return join(packageRoot(), 'schemas');
}

function isSampleloopPackage(file: string): boolean {
  if (!existsSync(file)) return false;
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return typeof parsed === 'object' && parsed !== null && (parsed as { name?: unknown }).name === PACKAGE_NAME;
  } catch {
    return false;
  }
}
