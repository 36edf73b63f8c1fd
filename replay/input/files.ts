import { closeSync, openSync, readdirSync, readSync, realpathSync, statSync, type Dirent } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { UsageError } from '../../engine/errors.js';

/** How the lines of an archive file are written. */
export type LineFormat = 'jsonl' | 'csv';

export interface ArchiveFile {
  path: string;
  bytes: number;
  gzip: boolean;
  /** From the extension; undefined when the name does not tell (the first byte of content decides: `{` → JSON lines). */
  format: LineFormat | undefined;
}

const GLOB_CHARS = /[*?[{]/;
const GZIP_MAGIC = [0x1f, 0x8b] as const;
const CSV_EXTENSIONS = ['.csv'];
const JSON_EXTENSIONS = ['.jsonl', '.ndjson', '.json'];

/**
 * Expands paths and globs (`*`, `?`, `**`, `[abc]`, `{a,b}`) into existing files: deduplicated and
 * sorted by path, so the same arguments in any order give the same input order. A pattern that
 * matches nothing is an error (a typo must not silently replay less).
 */
export function expandInputs(patterns: readonly string[], cwd = process.cwd()): string[] {
  const found = new Set<string>();
  for (const pattern of patterns) {
    const matches = GLOB_CHARS.test(pattern) ? globFiles(pattern, cwd) : [resolve(cwd, pattern)];
    if (matches.length === 0) throw new UsageError(`"${pattern}" matches no file`);
    for (const path of matches) {
      const stat = statSync(path, { throwIfNoEntry: false });
      if (!stat) throw new UsageError(`input file ${path} does not exist`);
      if (stat.isDirectory()) throw new UsageError(`${path} is a directory; give its files, e.g. "${join(path, 'gateway-*.jsonl.gz')}"`);
      found.add(path);
    }
  }
  return [...found].sort();
}

/** Compression from the magic bytes (1f 8b, whatever the name), format from the extension (after any `.gz`). */
export function describeFile(path: string): ArchiveFile {
  return { path, bytes: statSync(path).size, gzip: startsWithGzipMagic(path), format: formatFromExtension(path) };
}

export function formatFromExtension(path: string): LineFormat | undefined {
  const name = path.toLowerCase().replace(/\.gz$/, '');
  if (CSV_EXTENSIONS.some((ext) => name.endsWith(ext))) return 'csv';
  if (JSON_EXTENSIONS.some((ext) => name.endsWith(ext))) return 'jsonl';
  return undefined;
}

export function startsWithGzipMagic(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(2);
    const n = readSync(fd, head, 0, 2, 0);
    return n === 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1];
  } finally {
    closeSync(fd);
  }
}

function globFiles(pattern: string, cwd: string): string[] {
  const absolute = isAbsolute(pattern) ? pattern : join(cwd, pattern);
  const segments = absolute.split(sep);
  let base = segments[0] === '' ? sep : (segments[0] as string);
  let i = 1;
  while (i < segments.length && !GLOB_CHARS.test(segments[i] as string)) {
    base = join(base, segments[i] as string);
    i++;
  }
  const out: string[] = [];
  walk(base, segments.slice(i), out);
  return out;
}

function walk(dir: string, rest: readonly string[], out: string[]): void {
  const [head, ...tail] = rest;
  if (head === undefined) {
    if (statSync(dir, { throwIfNoEntry: false })?.isFile()) out.push(dir);
    return;
  }
  if (head === '**') {
    walk(dir, tail, out);
    for (const entry of safeReaddir(dir)) if (entry.isDirectory()) walk(join(dir, entry.name), rest, out);
    return;
  }
  const matcher = segmentRegex(head);
  for (const entry of safeReaddir(dir)) {
    if (!matcher.test(entry.name)) continue;
    const path = join(dir, entry.name);
    if (tail.length === 0) {
      if (entry.isFile() || (entry.isSymbolicLink() && statSync(path, { throwIfNoEntry: false })?.isFile())) out.push(path);
    } else if (entry.isDirectory()) {
      walk(path, tail, out);
    }
  }
}

function safeReaddir(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

/** One path segment of a glob as an anchored regex; names starting with "." only match a pattern starting with ".". */
export function segmentRegex(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i] as string;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = segment.indexOf(']', i + 1);
      if (close < 0) re += '\\[';
      else {
        const body = segment.slice(i + 1, close).replace(/^!/, '^').replace(/\\/g, '\\\\');
        re += `[${body}]`;
        i = close;
      }
    } else if (c === '{') {
      const close = segment.indexOf('}', i + 1);
      if (close < 0) re += '\\{';
      else {
        re += `(?:${segment
          .slice(i + 1, close)
          .split(',')
          .map((alt) => alt.replace(/[.+^$()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]'))
          .join('|')})`;
        i = close;
      }
    } else re += c.replace(/[.+^$()|\\\]}]/g, '\\$&');
  }
  const hidden = segment.startsWith('.') ? '' : '(?!\\.)';
  return new RegExp(`^${hidden}${re}$`);
}

/** The file an output path would overwrite, compared by real path (symlinks and `..` resolved). */
function realTarget(path: string): string {
  const absolute = resolve(path);
  try {
    return realpathSync(absolute);
  } catch {
    try {
      return join(realpathSync(dirname(absolute)), basename(absolute));
    } catch {
      return absolute;
    }
  }
}

/** Refuses a replay whose outputs (samples, side files, rejects) would overwrite one of its own input files. */
export function checkOutputsAreNotInputs(inputs: readonly string[], outputs: readonly string[]): void {
  const inputSet = new Map(inputs.map((p) => [realTarget(p), p] as const));
  for (const output of outputs) {
    const input = inputSet.get(realTarget(output));
    if (input !== undefined) {
      throw new UsageError(`replay would overwrite its input ${input} with its output ${output}; write the output (--out, --rejects) somewhere else`);
    }
  }
}

