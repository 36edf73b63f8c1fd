import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError } from './errors.js';

const fieldRule = z.union([
  z.object({ field: z.string().min(1), action: z.literal('tokenize') }).strict(),
  z.object({ field: z.string().min(1), action: z.literal('mask'), keepLast: z.number().int().min(0).default(4) }).strict(),
]);

const nonNegativeMs = z.number().int().min(0);

const topicsSchema = z
  .object({
    requests: z.string().default('requests'),
    predictions: z.string().default('predictions'),
    feedback: z.string().default('feedback'),
    samples: z.string().default('samples'),
    unmatched: z.string().default('unmatched'),
    orphans: z.string().default('orphans'),
    late: z.string().default('late'),
    review: z.string().default('review'),
    deadLetters: z.string().default('dead-letters'),
  })
  .strict();

export const configSchema = z
  .object({
    applicationId: z.string().regex(/^[A-Za-z0-9._-]+$/, 'use letters, digits, ".", "_" or "-"').default('sampleloop'),
    mode: z.enum(['embedded', 'kafka']).default('embedded'),
    dataDir: z.string().min(1).default('./sampleloop-data'),
    topics: topicsSchema.default(topicsSchema.parse({})),
    embedded: z
      .object({
        partitions: z.number().int().min(1).max(1024).default(1),
        syncWrites: z.boolean().default(false),
        commitIntervalMs: z.number().int().min(1).default(100),
        maintenanceIntervalMs: z.number().int().min(1000).default(60_000),
        retentionMs: z.number().int().min(1).nullable().default(null),
      })
      .strict()
      .default({ partitions: 1, syncWrites: false, commitIntervalMs: 100, maintenanceIntervalMs: 60_000, retentionMs: null }),
    join: z
      .object({
        beforeMs: nonNegativeMs.default(60_000),
        afterMs: nonNegativeMs.default(24 * 3600_000),
        graceMs: nonNegativeMs.default(3600_000),
        duplicates: z.enum(['latest', 'first']).default('latest'),
        onTimeout: z.enum(['unmatched', 'confirm']).default('unmatched'),
        idleAdvance: z.boolean().default(true),
        punctuateIntervalMs: z.number().int().min(10).default(1000),
      })
      .strict()
      .default({ beforeMs: 60_000, afterMs: 24 * 3600_000, graceMs: 3600_000, duplicates: 'latest', onTimeout: 'unmatched', idleAdvance: true, punctuateIntervalMs: 1000 }),
    categories: z
      .record(
        z.string().min(1),
        z.object({ classes: z.array(z.string().min(1)).optional(), sensitive: z.array(fieldRule).default([]) }).strict(),
      )
      .default({}),
    privacy: z
      .object({
        alwaysSensitive: z.array(fieldRule).default([
          { field: 'idNumber', action: 'tokenize' },
          { field: 'name', action: 'tokenize' },
          { field: 'phone', action: 'mask', keepLast: 4 },
        ]),
        keyEnv: z.string().default('SAMPLELOOP_PRIVACY_KEY'),
        keyFile: z.string().optional(),
      })
      .strict()
      .default({
        alwaysSensitive: [
          { field: 'idNumber', action: 'tokenize' },
          { field: 'name', action: 'tokenize' },
          { field: 'phone', action: 'mask', keepLast: 4 },
        ],
        keyEnv: 'SAMPLELOOP_PRIVACY_KEY',
      }),
    input: z
      .object({
        maxRecordBytes: z.number().int().min(64).default(1024 * 1024),
        rejectUnknownCategories: z.boolean().default(false),
      })
      .strict()
      .default({ maxRecordBytes: 1024 * 1024, rejectUnknownCategories: false }),
    http: z
      .object({ host: z.string().default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(9464) })
      .strict()
      .default({ host: '127.0.0.1', port: 9464 }),
    log: z.object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') }).strict().default({ level: 'info' }),
  })
  .strict();

export type SampleloopConfig = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** Prefix of environment overrides: SAMPLELOOP__join__graceMs=5000 sets join.graceMs. */
export const ENV_PREFIX = 'SAMPLELOOP__';

export function parseConfig(input: unknown, origin = 'configuration'): SampleloopConfig {
  const result = configSchema.safeParse(input ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const path = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
    return `  - ${path}: ${issue.message}`;
  });
  throw new ConfigError(`invalid ${origin}:\n${problems.join('\n')}\nSee docs/configuration.md for every setting and its default.`);
}

/** Reads the JSON config file (if any), applies SAMPLELOOP__ environment overrides, validates. */
export function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv; overrides?: ConfigInput } = {}): SampleloopConfig {
  let base: Record<string, unknown> = {};
  if (options.file) {
    const path = resolve(options.file);
    if (!existsSync(path)) throw new ConfigError(`config file ${path} does not exist; pass an existing JSON file with --config`);
    try {
      base = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
    }
  }
  const merged = deepMerge(deepMerge(base, envOverrides(options.env ?? process.env)), (options.overrides ?? {}) as Record<string, unknown>);
  return parseConfig(merged, options.file ? `configuration (${options.file} + environment)` : 'configuration');
}

export function envOverrides(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || raw === undefined) continue;
    const path = name.slice(ENV_PREFIX.length).split('__').filter(Boolean);
    if (path.length === 0) continue;
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    let node = out;
    for (let i = 0; i < path.length - 1; i++) {
      const key = path[i] as string;
      node[key] = typeof node[key] === 'object' && node[key] !== null ? node[key] : {};
      node = node[key] as Record<string, unknown>;
    }
    node[path[path.length - 1] as string] = value;
  }
  return out;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = isPlainObject(prev) && isPlainObject(v) ? deepMerge(prev, v) : v;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
