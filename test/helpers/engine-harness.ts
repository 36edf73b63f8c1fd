/**
 * Drives the real embedded engine one record at a time, with a wall clock the test controls.
 *
 * Every `send` appends exactly one record and processes everything available before returning, so
 * records are handled in exactly the order they were sent. The privacy key is a fixed test key (read
 * from a key file in the temp dir) so tests can compute expected tokens independently.
 */
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type ConfigInput, type SampleloopConfig } from '../../config/config.js';
import { directAccess, type DisplayRecord } from '../../access/embedded.js';
import { startEmbeddedApp, type EmbeddedApp } from '../../app/embedded.js';
import { silentLogger } from '../../engine/logger.js';
import { EngineMetrics } from '../../engine/metrics.js';

/** The privacy key every harness uses (32 bytes). */
export const HARNESS_PRIVACY_KEY = Buffer.from('6a1f0c3e9b7d45a2c8e0f13b5d7a9c2e4f6081a3b5c7d9e1f20314253647586a', 'hex');

/** An environment variable name nobody sets, so a developer's SAMPLELOOP_PRIVACY_KEY cannot change the tokens. */
const UNUSED_KEY_ENV = 'SAMPLELOOP_TEST_HARNESS_UNUSED_KEY';

/** Default starting value of the controllable wall clock. */
export const HARNESS_START_WALL_CLOCK = 1_800_000_000_000;

/**
 * The default privacy rules (name, idNumber tokenized; phone masked keeping 4), computed from
 * docs/join-semantics.md with HARNESS_PRIVACY_KEY rather than with the engine's own code.
 */
export function protectAsDocumented(attributes: Record<string, string>): Record<string, string> {
  const out = { ...attributes };
  for (const field of ['idNumber', 'name']) {
    const value = out[field];
    if (value === undefined || /^tok_[A-Za-z0-9_-]{22}$/.test(value)) continue;
    const mac = createHmac('sha256', HARNESS_PRIVACY_KEY).update(`${field}\u0000${value}`, 'utf8').digest('base64url');
    out[field] = `tok_${mac.slice(0, 22)}`;
  }
  const phone = out.phone;
  if (phone !== undefined) {
    const chars = Array.from(phone);
    if (chars.length > 4) out.phone = '*'.repeat(chars.length - 4) + chars.slice(-4).join('');
  }
  return out;
}

export type InputKind = 'prediction' | 'feedback';

export interface HarnessOptions {
  /** Engine configuration; `dataDir` and the privacy key file are filled in by the harness. */
  config?: ConfigInput;
  /** Starting wall-clock time (ms). */
  wallClock?: number;
  /** Origin of samples; `replay` also turns idle advance off, as the engine does. */
  origin?: 'online' | 'replay';
}

export interface EngineHarness {
  readonly dataDir: string;
  readonly config: SampleloopConfig;
  /** The running app (replaced by `restart`). */
  readonly app: EmbeddedApp;
  /** Appends one JSON record to the predictions or feedback topic (key = requestId) and processes it. */
  send(kind: InputKind, value: object): void;
  /** Appends one record with the given bytes to `topic` and processes it. */
  sendRaw(topic: string, bytes: Buffer, options?: { key?: string | null; timestamp?: number }): void;
  /** Current value of the controllable wall clock. */
  wallClock(): number;
  advanceWallClock(ms: number): void;
  /** One runtime step at the current wall clock (runs due punctuations). */
  punctuate(): void;
  /** End of input: closes every open window and commits. */
  flush(): void;
  /** Decoded values of `topic`, in log order. */
  outputs(topic: string): Promise<unknown[]>;
  /** Full records of `topic` (key, headers, timestamp, decoded value), in log order. */
  records(topic: string): Promise<DisplayRecord[]>;
  /** Closes the app (committing) and starts a new one on the same data dir and config; the clock keeps going. */
  restart(): Promise<void>;
  /** Closes the app and removes the temp dir. */
  close(): Promise<void>;
}

export async function startHarness(options: HarnessOptions = {}): Promise<EngineHarness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sampleloop-harness-'));
  const keyFile = join(dataDir, 'test-privacy.key');
  writeFileSync(keyFile, `${HARNESS_PRIVACY_KEY.toString('hex')}\n`, { mode: 0o600 });
  const input = options.config ?? {};
  let config: SampleloopConfig;
  try {
    config = parseConfig({
      ...input,
      dataDir,
      log: { level: 'silent' },
      privacy: { ...(input.privacy ?? {}), keyEnv: UNUSED_KEY_ENV, keyFile },
    });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }

  let clock = options.wallClock ?? HARNESS_START_WALL_CLOCK;
  const now = (): number => clock;
  const start = (): Promise<EmbeddedApp> =>
    startEmbeddedApp(config, { logger: silentLogger(), metrics: new EngineMetrics(), now, origin: options.origin ?? 'online' });

  let app: EmbeddedApp;
  try {
    app = await start();
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  let closed = false;

  const append = (topic: string, key: string | null, value: Buffer, timestamp: number): void => {
    app.log.append([{ topic, key: key === null ? null : Buffer.from(key, 'utf8'), value, timestamp, headers: {} }]);
    app.runtime.runUntilIdle();
  };

  const records = (topic: string): Promise<DisplayRecord[]> => {
    if (app.log.topic(topic) === undefined) return Promise.resolve([]);
    return directAccess(app.log, app.registry, now).read(topic);
  };

  return {
    dataDir,
    config,
    get app() {
      return app;
    },
    send(kind, value) {
      const fields = value as { requestId?: unknown; timestamp?: unknown };
      const key = typeof fields.requestId === 'string' ? fields.requestId : null;
      const timestamp = typeof fields.timestamp === 'number' ? fields.timestamp : clock;
      const topic = kind === 'prediction' ? config.topics.predictions : config.topics.feedback;
      append(topic, key, Buffer.from(JSON.stringify(value), 'utf8'), timestamp);
    },
    sendRaw(topic, bytes, sendOptions = {}) {
      app.log.ensureTopic(topic);
      append(topic, sendOptions.key ?? null, bytes, sendOptions.timestamp ?? clock);
    },
    wallClock: () => clock,
    advanceWallClock(ms) {
      clock += ms;
    },
    punctuate() {
      app.runtime.step();
      app.runtime.commit();
    },
    flush() {
      app.runtime.endOfInput();
    },
    outputs: async (topic) => (await records(topic)).map((r) => r.value),
    records,
    async restart() {
      await app.close();
      app = await start();
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        await app.close();
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}
