import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { unprotectedDefaultFields } from '../cli/run.js';
import { loadConfig, parseConfig } from '../config/config.js';
import { ConfigError } from '../engine/errors.js';

describe('loadConfig', () => {
  it('SAMPLELOOP_LOG_LEVEL sets log.level over the file; SAMPLELOOP__log__level wins over both', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-config-'));
    try {
      const file = join(dir, 'c.json');
      writeFileSync(file, JSON.stringify({ log: { level: 'debug' } }));
      expect(loadConfig({ file, env: {} }).log.level).toBe('debug');
      expect(loadConfig({ file, env: { SAMPLELOOP_LOG_LEVEL: 'warn' } }).log.level).toBe('warn');
      expect(loadConfig({ file, env: { SAMPLELOOP_LOG_LEVEL: 'warn', SAMPLELOOP__log__level: 'error' } }).log.level).toBe('error');
      expect(() => loadConfig({ env: { SAMPLELOOP_LOG_LEVEL: 'loud' } })).toThrow(/log\.level/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the valid privacy actions and rejects categories with fewer than 2 or repeated classes', () => {
    const attempt = (categories: unknown): string => {
      try {
        loadConfig({ env: { SAMPLELOOP__categories: JSON.stringify(categories) } });
        return 'accepted';
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
    };
    expect(attempt({ a: { sensitive: [{ field: 'x', action: 'hash' }] } })).toMatch(/categories\.a\.sensitive\.0\.action: .*'tokenize' \| 'mask'/);
    expect(attempt({ a: { classes: ['x'] } })).toMatch(/categories\.a\.classes: a category needs at least 2 classes/);
    expect(attempt({ a: { classes: ['x', 'x'] } })).toMatch(/categories\.a\.classes: classes must be distinct/);
    expect(attempt({ a: { classes: ['x', 'y'], sensitive: [{ field: 'phone', action: 'mask', keepLast: 2 }] } })).toBe('accepted');
  });
});

describe('privacy.alwaysSensitive set in the configuration', () => {
  it('names the default fields it leaves out, which `run` logs as a warning (setting it replaces the defaults)', () => {
    expect(unprotectedDefaultFields(parseConfig({}))).toEqual([]);
    const onlyIban = parseConfig({ privacy: { alwaysSensitive: [{ field: 'iban', action: 'tokenize' }] } });
    expect(onlyIban.privacy.alwaysSensitive.map((r) => r.field)).toEqual(['iban']);
    expect(unprotectedDefaultFields(onlyIban)).toEqual(['idNumber', 'name', 'phone']);
    const kept = parseConfig({
      privacy: {
        alwaysSensitive: [
          { field: 'idNumber', action: 'tokenize' },
          { field: 'name', action: 'tokenize' },
          { field: 'phone', action: 'mask', keepLast: 2 },
          { field: 'iban', action: 'tokenize' },
        ],
      },
    });
    expect(unprotectedDefaultFields(kept)).toEqual([]);
  });
});
