import { createPublicKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { hostname } from 'node:os';
import { z } from 'zod';
import { ConfigError } from '../engine/errors.js';

const fieldRule = z.discriminatedUnion('action', [
  z.object({ field: z.string().min(1), action: z.literal('tokenize') }).strict(),
  z.object({ field: z.string().min(1), action: z.literal('mask'), keepLast: z.number().int().min(0).default(4) }).strict(),
]);

const nonNegativeMs = z.number().int().min(0);

/**
 * A secret given by reference instead of in the JSON: `{"file": "/run/secrets/x"}` (the file's text,
 * one trailing newline removed) or `{"env": "VAR"}` (the environment variable's value). Resolved when
 * the configuration is loaded; an error names the setting and the file or variable, never a value.
 */
const secretReference = z.union([z.object({ file: z.string().min(1) }).strict(), z.object({ env: z.string().min(1) }).strict()]);

function resolveSecret<T>(value: T | z.infer<typeof secretReference>, ctx: z.RefinementCtx): T | string {
  if (typeof value !== 'object' || value === null) return value;
  const ref = value as z.infer<typeof secretReference>;
  if ('file' in ref) {
    try {
      return readFileSync(resolve(ref.file), 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `cannot read the secret file ${resolve(ref.file)} (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
      return z.NEVER;
    }
  }
  const resolved = process.env[ref.env];
  if (resolved === undefined || resolved === '') {
    ctx.addIssue({ code: 'custom', message: `environment variable ${ref.env} is not set (the setting refers to it)` });
    return z.NEVER;
  }
  return resolved;
}

const secretString = z.union([z.string(), secretReference]).transform((v, ctx) => resolveSecret(v, ctx) as string);
const librdkafkaValue = z.union([z.string(), z.number(), z.boolean(), secretReference]).transform((v, ctx) => resolveSecret(v, ctx) as string | number | boolean);

/** `privacy.alwaysSensitive` when the configuration does not set it (setting it replaces this list). */
export const DEFAULT_SENSITIVE_RULES: ReadonlyArray<z.output<typeof fieldRule>> = [
  { field: 'idNumber', action: 'tokenize' },
  { field: 'name', action: 'tokenize' },
  { field: 'phone', action: 'mask', keepLast: 4 },
];

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
    /** The model ledger (ModelVersion records keyed by category); never compacted in embedded mode. */
    models: z.string().default('models'),
    /** RetrainTrigger records keyed by category (docs/retraining.md). */
    retrainTriggers: z.string().default('retrain-triggers'),
    /** The built-in trainer's promote / reject decisions (JSON, keyed by category). */
    trainerDecisions: z.string().default('trainer-decisions'),
  })
  .strict();

/** The retrain trigger's rules (docs/retraining.md); global under `trigger`, per category under `categories.<name>.trigger`. */
const triggerRuleFields = {
  minNewSamples: z.number().int().min(1),
  minLiveAccuracy: z.number().min(0).max(1),
  minWindowSamples: z.number().int().min(1),
  windowSamples: z.number().int().min(1),
  maxAgeMs: z.number().int().min(1).nullable(),
  minNewSamplesForAge: z.number().int().min(1),
  debounceMs: nonNegativeMs,
  /** A category with no serving version fires once it has this many samples; null: enough for the trainer's minTrainSamples and minHoldoutSamples. */
  minFirstVersionSamples: z.number().int().min(1).nullable(),
  /** feature-drift: fire when a feature's population stability index exceeds this (null = off). */
  maxFeaturePsi: z.number().gt(0).nullable(),
  /** ... over at least this many samples since the serving version started; its reference needs as many. */
  minDriftSamples: z.number().int().min(1),
  /** Bins per feature (quantiles of the reference). */
  driftBins: z.number().int().min(2).max(100),
  /** Size of the reference sample kept per category (a hash-chosen uniform sample of the samples before the serving version). */
  driftReferenceSamples: z.number().int().min(10),
};

const TRIGGER_RULE_DEFAULTS = {
  minNewSamples: 1000,
  minLiveAccuracy: 0.8,
  minWindowSamples: 100,
  windowSamples: 500,
  maxAgeMs: 7 * 24 * 3600_000,
  minNewSamplesForAge: 1,
  debounceMs: 3600_000,
  minFirstVersionSamples: null,
  maxFeaturePsi: 0.2,
  minDriftSamples: 500,
  driftBins: 10,
  driftReferenceSamples: 1000,
};

/** The built-in trainer's settings (docs/retraining.md); global under `trainer`, per category under `categories.<name>.trainer`. */
const trainerFields = {
  holdoutFraction: z.number().gt(0).lt(1),
  minTrainSamples: z.number().int().min(2),
  minHoldoutSamples: z.number().int().min(1),
  /** mcnemar: McNemar's exact test on the paired holdout results; min-improvement: a fixed accuracy margin. */
  promotionTest: z.enum(['mcnemar', 'min-improvement']),
  /** mcnemar: promote when the one-sided exact p-value is below this. */
  significance: z.number().gt(0).lt(1),
  /** Accuracy gain the candidate needs on the holdout (both tests; min-improvement also needs candidate > serving). */
  minImprovement: z.number().min(0).max(1),
  /** After the gate passes, train the published version on every sample (train + holdout). */
  refitOnAll: z.boolean(),
  l2: z.number().min(0),
  maxIterations: z.number().int().min(1),
  tolerance: z.number().min(0),
};

const TRAINER_DEFAULTS = {
  holdoutFraction: 0.2,
  minTrainSamples: 50,
  minHoldoutSamples: 20,
  promotionTest: 'mcnemar' as const,
  significance: 0.05,
  minImprovement: 0,
  refitOnAll: true,
  l2: 1e-3,
  maxIterations: 500,
  tolerance: 1e-5,
};

/** The same fields, each with its default. */
function withDefaults<S extends Record<string, z.ZodType>>(shape: S, defaults: { [K in keyof S]: z.output<S[K]> }): { [K in keyof S]: z.ZodDefault<S[K]> } {
  const out: Record<string, z.ZodType> = {};
  for (const [key, schema] of Object.entries(shape)) out[key] = schema.default(defaults[key as keyof S] as never);
  return out as { [K in keyof S]: z.ZodDefault<S[K]> };
}

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
        /** Input records every consumer group has committed past are deleted this long after (null: kept). */
        inputRetentionMs: z.number().int().min(0).nullable().default(3600_000),
      })
      .strict()
      .default({ partitions: 1, syncWrites: false, commitIntervalMs: 100, maintenanceIntervalMs: 60_000, retentionMs: null, inputRetentionMs: 3600_000 }),
    join: z
      .object({
        beforeMs: nonNegativeMs.default(60_000),
        afterMs: nonNegativeMs.default(24 * 3600_000),
        graceMs: nonNegativeMs.default(3600_000),
        duplicates: z.enum(['latest', 'first']).default('latest'),
        onTimeout: z.enum(['unmatched', 'confirm']).default('unmatched'),
        idleAdvance: z.boolean().default(true),
        punctuateIntervalMs: z.number().int().min(10).default(1000),
        maxFutureMs: nonNegativeMs.nullable().default(3600_000),
      })
      .strict()
      .default({ beforeMs: 60_000, afterMs: 24 * 3600_000, graceMs: 3600_000, duplicates: 'latest', onTimeout: 'unmatched', idleAdvance: true, punctuateIntervalMs: 1000, maxFutureMs: 3600_000 }),
    categories: z
      .record(
        z.string().min(1),
        z
          .object({
            classes: z
              .array(z.string().min(1))
              .min(2, 'a category needs at least 2 classes')
              .refine((classes) => new Set(classes).size === classes.length, { message: 'classes must be distinct' })
              .optional(),
            sensitive: z.array(fieldRule).default([]),
            /** Overrides of `trigger.*` rule settings for this category. */
            trigger: z.object(triggerRuleFields).partial().strict().optional(),
            /** Overrides of `trainer.*` settings for this category. */
            trainer: z.object(trainerFields).partial().strict().optional(),
          })
          .strict(),
      )
      .default({}),
    privacy: z
      .object({
        alwaysSensitive: z.array(fieldRule).default(() => DEFAULT_SENSITIVE_RULES.map((r) => ({ ...r }))),
        keyEnv: z.string().default('SAMPLELOOP_PRIVACY_KEY'),
        keyFile: z.string().optional(),
        /** Apply the rules to requests, predictions and feedback before they are appended (embedded ingress, the CLI's produce). */
        protectOnIngest: z.boolean().default(true),
      })
      .strict()
      .default({
        alwaysSensitive: DEFAULT_SENSITIVE_RULES.map((r) => ({ ...r })),
        keyEnv: 'SAMPLELOOP_PRIVACY_KEY',
        protectOnIngest: true,
      }),
    input: z
      .object({
        maxRecordBytes: z.number().int().min(64).default(1024 * 1024),
        rejectUnknownCategories: z.boolean().default(false),
      })
      .strict()
      .default({ maxRecordBytes: 1024 * 1024, rejectUnknownCategories: false }),
    predictor: z
      .object({
        enabled: z.boolean().default(false),
        /** Event time of a prediction: the request's time plus the inference time, or the wall clock. */
        timestamp: z.enum(['request-plus-latency', 'wall-clock']).default('request-plus-latency'),
        /** Values for features a request lacks, per category ("*" = every category); a missing feature without one is a dead letter. */
        featureDefaults: z.record(z.string().min(1), z.record(z.string().min(1), z.number().finite())).default({}),
      })
      .strict()
      .default({ enabled: false, timestamp: 'request-plus-latency', featureDefaults: {} }),
    models: z
      .object({
        /** Category whose model serves requests of categories that have none (unset: those requests are dead letters). */
        defaultCategory: z.string().min(1).optional(),
        /** The key `models publish`, `models checkpoint` and the built-in trainer sign with (docs/model-cluster.md). */
        signing: z
          .object({
            /** Ed25519 private key, PKCS#8 PEM (`sampleloop models keygen`); default <dataDir>/model-signing.key, generated when missing. */
            keyFile: z.string().min(1).optional(),
          })
          .strict()
          .default({}),
        /** Who may publish which category; empty `keys`: the signing key above, for every category. */
        trust: z
          .object({
            keys: z
              .array(
                z
                  .object({
                    name: z.string().min(1),
                    publicKey: z.string().refine(isEd25519PublicKey, 'expected an Ed25519 public key: base64 of its 32 raw bytes (as `models keygen` prints it) or PEM'),
                    categories: z.array(z.string().min(1)).min(1).default(['*']),
                    retiredAt: z.union([z.number().int(), z.string().refine((t) => Number.isFinite(Date.parse(t)), 'expected an ISO-8601 time')]).optional(),
                  })
                  .strict(),
              )
              .default([]),
            allowUnsigned: z.boolean().default(false),
          })
          .strict()
          .default({ keys: [], allowUnsigned: false }),
      })
      .strict()
      .default({ signing: {}, trust: { keys: [], allowUnsigned: false } }),
    trigger: z
      .object({
        enabled: z.boolean().default(false),
        ...withDefaults(triggerRuleFields, TRIGGER_RULE_DEFAULTS),
        checkIntervalMs: z.number().int().min(10).default(10_000),
        /** Internal topic of samples and model versions re-keyed by category; default `<applicationId>-retrain-trigger-by-category-repartition`. */
        repartitionTopic: z.string().min(1).optional(),
      })
      .strict()
      .default({ enabled: false, ...TRIGGER_RULE_DEFAULTS, checkIntervalMs: 10_000 }),
    trainer: z
      .object({
        enabled: z.boolean().default(false),
        ...withDefaults(trainerFields, TRAINER_DEFAULTS),
        pollIntervalMs: z.number().int().min(10).default(1000),
        progressEveryIterations: z.number().int().min(1).default(10),
      })
      .strict()
      .default({ enabled: false, ...TRAINER_DEFAULTS, pollIntervalMs: 1000, progressEveryIterations: 10 }),
    kafka: z
      .object({
        /** Shortcut for librdkafka["bootstrap.servers"]. */
        bootstrapServers: z.string().min(1).optional(),
        processingGuarantee: z.enum(['at_least_once', 'exactly_once']).default('at_least_once'),
        /** Stable name of this instance (transactional id under exactly_once); give each instance its own. */
        instanceId: z.string().regex(/^[A-Za-z0-9._-]+$/, 'use letters, digits, ".", "_" or "-"').default(defaultInstanceId()),
        /** Local RocksDB state of the tasks; default <dataDir>/state. */
        stateDir: z.string().min(1).optional(),
        /** Replication factor of topics the engine creates (-1 = the broker's default). */
        replicationFactor: z.number().int().min(-1).default(-1),
        /** Partitions of topics the engine creates. */
        partitions: z.number().int().min(1).default(4),
        commitIntervalMs: z.number().int().min(1).default(100),
        pollRecords: z.number().int().min(1).default(1000),
        /** Any librdkafka property, passed to every client (security.protocol, sasl.mechanisms, ssl.ca.location, ...). */
        /** Values may be secret references ({"file": ...} or {"env": ...}), e.g. for sasl.password. */
        librdkafka: z.record(z.string(), librdkafkaValue).default({}),
        schemaRegistry: z
          .object({
            url: z.string().url(),
            username: secretString.optional(),
            password: secretString.optional(),
            /** PEM file of the CA certificate(s) to trust for an https registry (besides Node's built-in ones). */
            caLocation: z.string().min(1).optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({ processingGuarantee: 'at_least_once', instanceId: defaultInstanceId(), replicationFactor: -1, partitions: 4, commitIntervalMs: 100, pollRecords: 1000, librdkafka: {} }),
    replay: z
      .object({
        /** Where `replay` stages the archive and runs its temporary log (needs room for about twice the uncompressed archive); default: the OS temp dir. */
        tempDir: z.string().min(1).optional(),
        /** How often `replay` prints progress on stderr (TTY or --progress). */
        progressIntervalMs: z.number().int().min(50).default(1000),
        /** `archive`: start a new file once this many uncompressed bytes are written to the current one. */
        archiveMaxFileBytes: z.number().int().min(1024).default(64 * 1024 * 1024),
        /**
         * Join state entries `replay` keeps in memory before writing them to its scratch database (also
         * written once the heap's old generation is half full); 0 writes them at every commit (5,000 records).
         */
        stateMemoryEntries: z.number().int().min(0).default(200_000),
      })
      .strict()
      .default({ progressIntervalMs: 1000, archiveMaxFileBytes: 64 * 1024 * 1024, stateMemoryEntries: 200_000 }),
    http: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(9464),
        /** Largest request body of every route but the topic API's POST (413 above it). */
        bodyLimitBytes: z.number().int().min(1024).default(1024 * 1024),
        /** Largest body of POST /topics/<topic>/records (the CLI's produce sends 4 MiB pieces). */
        topicsBodyLimitBytes: z.number().int().min(1024).default(32 * 1024 * 1024),
        /** Bearer tokens, per scope (infer, feedback, topics, admin): a JSON file (docs/gateway.md). Unset: no authentication. */
        tokensFile: z.string().min(1).optional(),
        /** TLS: PEM certificate chain and private key files; both or neither. */
        tls: z.object({ certFile: z.string().min(1), keyFile: z.string().min(1) }).strict().optional(),
        /** Listen on a non-loopback address without tokens (refused unless set). */
        allowUnauthenticated: z.boolean().default(false),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 9464, bodyLimitBytes: 1024 * 1024, topicsBodyLimitBytes: 32 * 1024 * 1024, allowUnauthenticated: false }),
    gateway: z
      .object({
        /** Serve OIP inference (/v2) and feedback (/v1/feedback) on the HTTP port. */
        enabled: z.boolean().default(true),
        /** Rows one call may carry. */
        maxRowsPerRequest: z.number().int().min(1).max(100_000).default(1000),
        /** Rows of one onnxruntime run (calls waiting together are batched up to this). */
        maxBatchRows: z.number().int().min(1).default(256),
        /** Rows waiting per category beyond which calls get 503 + Retry-After. */
        maxQueueRows: z.number().int().min(1).default(4096),
        retryAfterSeconds: z.number().int().min(1).default(1),
        /** Records one POST /v1/feedback may carry. */
        maxFeedbackRecords: z.number().int().min(1).max(100_000).default(1000),
      })
      .strict()
      .default({ enabled: true, maxRowsPerRequest: 1000, maxBatchRows: 256, maxQueueRows: 4096, retryAfterSeconds: 1, maxFeedbackRecords: 1000 }),
    dashboard: z
      .object({
        /** Serve the live dashboard at `/` and its API under `/api/v1/` on the HTTP port. */
        enabled: z.boolean().default(true),
        /** One slot of the in-process time series. */
        resolutionMs: z.number().int().min(100).default(1000),
        /** How far back the time series reach (the ring keeps retentionMs / resolutionMs slots, at most 100,000). */
        retentionMs: z.number().int().min(1000).default(3_600_000),
        /** Dead letters the page lists (reason, topic, offset; never payloads). */
        recentDeadLetters: z.number().int().min(1).max(1000).default(50),
        /** How often the model ledger is read and verified again. */
        ledgerRefreshMs: z.number().int().min(500).default(5000),
      })
      .strict()
      .refine((d) => d.retentionMs / d.resolutionMs <= 100_000, { message: 'dashboard.retentionMs / dashboard.resolutionMs must be at most 100,000 slots' })
      .default({ enabled: true, resolutionMs: 1000, retentionMs: 3_600_000, recentDeadLetters: 50, ledgerRefreshMs: 5000 }),
    log: z.object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') }).strict().default({ level: 'info' }),
  })
  .strict();

export type SampleloopConfig = z.infer<typeof configSchema>;

function isEd25519PublicKey(text: string): boolean {
  try {
    const trimmed = text.trim();
    const key = trimmed.startsWith('-----BEGIN')
      ? createPublicKey(trimmed)
      : createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(trimmed, 'base64').toString('base64url') }, format: 'jwk' });
    return key.asymmetricKeyType === 'ed25519';
  } catch {
    return false;
  }
}

function defaultInstanceId(): string {
  return hostname().replace(/[^A-Za-z0-9._-]/g, '-') || 'instance';
}
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

/** Shorthand for SAMPLELOOP__log__level (which wins when both are set). */
export const LOG_LEVEL_ENV = 'SAMPLELOOP_LOG_LEVEL';

export function envOverrides(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const shorthand = env[LOG_LEVEL_ENV];
  if (shorthand !== undefined && shorthand !== '') out.log = { level: shorthand };
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
