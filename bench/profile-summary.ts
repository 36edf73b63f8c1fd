/**
 * Top self-time functions of a V8 `.cpuprofile` (written by `node --cpu-prof`).
 * Run: `node dist/bench/profile-summary.js <file.cpuprofile> [--top N]`.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { dirname, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../engine/errors.js';
import { formatTable, isMainModule } from './measure.js';
import { packageRoot } from '../config/paths.js';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  /** `name (file:line)`, or V8's pseudo-frames such as `(garbage collector)`. */
  frame: string;
  selfMs: number;
  share: number;
}

function frameName(node: CpuProfileNode, root: string): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const name = functionName === '' ? '(anonymous)' : functionName;
  if (url === '') return name;
  const path = url.startsWith('file://') ? relative(root, new URL(url).pathname) : url;
  return `${name} (${path}:${lineNumber + 1})`;
}

/**
 * Self time per function, merged over every call site of the same function, largest first. Native
 * code has no name in V8 profiles; it is shown as `(native) in <JS caller>` so addon calls stay apart.
 */
export function selfTimes(profile: CpuProfile, root = packageRoot()): SelfTime[] {
  const byNode = new Map<number, CpuProfileNode>();
  const parentOf = new Map<number, CpuProfileNode>();
  for (const node of profile.nodes) byNode.set(node.id, node);
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node);
  const nameOf = (node: CpuProfileNode): string => {
    const { functionName, url } = node.callFrame;
    const parent = parentOf.get(node.id);
    if (functionName === '' && url === '' && parent !== undefined && parent.callFrame.url !== '') return `(native) in ${frameName(parent, root)}`;
    return frameName(node, root);
  };
  const totals = new Map<string, number>();
  let all = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attributing it to sample i is what DevTools does.
    const delta = Math.max(0, profile.timeDeltas[i] ?? 0);
    const node = byNode.get(profile.samples[i] as number);
    if (!node) continue;
    const frame = nameOf(node);
    totals.set(frame, (totals.get(frame) ?? 0) + delta);
    all += delta;
  }
  return [...totals.entries()]
    .map(([frame, us]) => ({ frame, selfMs: us / 1000, share: all === 0 ? 0 : us / all }))
    .sort((a, b) => b.selfMs - a.selfMs);
}

/** Self time grouped by file (or by package for node_modules, and `node:` for Node's own JS). */
export function selfTimesByOrigin(profile: CpuProfile, root = packageRoot()): SelfTime[] {
  const merged = new Map<string, number>();
  let all = 0;
  for (const t of selfTimes(profile, root)) {
    const match = /\(([^()]*):\d+\)$/.exec(t.frame.startsWith('(native) in ') ? t.frame.slice('(native) in '.length) : t.frame);
    let origin = match ? (match[1] as string) : t.frame;
    const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(origin);
    if (nm) origin = `npm:${nm[1] as string}`;
    else if (origin.startsWith('node:')) origin = 'node: (Node.js internals)';
    merged.set(origin, (merged.get(origin) ?? 0) + t.selfMs);
    all += t.selfMs;
  }
  return [...merged.entries()].map(([frame, selfMs]) => ({ frame, selfMs, share: all === 0 ? 0 : selfMs / all })).sort((a, b) => b.selfMs - a.selfMs);
}

/**
 * Runs `fn` under the V8 sampling profiler (same data as `node --cpu-prof`, but only for this
 * interval) and writes the profile to `path` when it is not null.
 */
export async function withCpuProfile<T>(path: string | null, fn: () => Promise<T>): Promise<{ value: T; profile: CpuProfile | null }> {
  if (path === null) return { value: await fn(), profile: null };
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 500 });
    await session.post('Profiler.start');
    const value = await fn();
    const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: CpuProfile };
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, JSON.stringify(profile));
    return { value, profile };
  } finally {
    session.disconnect();
  }
}

export function topSelfTimeTable(profile: CpuProfile, top: number): string {
  return table(selfTimes(profile), top, 'function (self time)');
}

export function readProfile(path: string): CpuProfile {
  return JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
}

function table(rows: SelfTime[], top: number, title: string): string {
  return formatTable(
    [title, 'self ms', 'share'],
    rows.slice(0, top).map((r) => [r.frame, r.selfMs.toFixed(0), `${(100 * r.share).toFixed(1)}%`]),
  );
}

if (isMainModule(import.meta.url)) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '15' } } });
  const file = positionals[0];
  if (file === undefined) throw new UsageError('usage: profile-summary <file.cpuprofile> [--top N]');
  const profile = readProfile(file);
  const top = Number(values.top);
  console.log(table(selfTimes(profile), top, 'function (self time)'));
  console.log('');
  console.log(table(selfTimesByOrigin(profile), top, 'origin'));
}
