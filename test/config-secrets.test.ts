/**
 * Secrets by reference in the Kafka settings (issue 11 part 5): {"file": ...} and {"env": ...} values
 * of kafka.librdkafka and kafka.schemaRegistry.username/.password are resolved when the configuration
 * is loaded; a missing file or variable is a configuration error naming the setting, never a value.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/config.js';
import { ConfigError } from '../engine/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'sampleloop-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function kafkaConfig(librdkafka: Record<string, unknown>, registry: Record<string, unknown> = {}): unknown {
  return { mode: 'kafka', kafka: { bootstrapServers: '127.0.0.1:9093', librdkafka, schemaRegistry: { url: 'https://registry.example/apis/ccompat/v7', ...registry } } };
}

describe('secret references in the Kafka settings', () => {
  it('reads {"file"} (one trailing newline removed) and {"env"} values; plain values stay as they are', () => {
    const file = join(dir, 'kafka.password');
    writeFileSync(file, 's3cret-from-file\n');
    process.env.SAMPLELOOP_TEST_SECRET_REGISTRY = 'registry-s3cret';
    try {
      const config = parseConfig(kafkaConfig({ 'sasl.password': { file }, 'sasl.username': 'sampleloop', 'socket.keepalive.enable': true }, { username: 'reg', password: { env: 'SAMPLELOOP_TEST_SECRET_REGISTRY' } }));
      expect(config.kafka.librdkafka).toEqual({ 'sasl.password': 's3cret-from-file', 'sasl.username': 'sampleloop', 'socket.keepalive.enable': true });
      expect(config.kafka.schemaRegistry).toMatchObject({ username: 'reg', password: 'registry-s3cret' });
    } finally {
      delete process.env.SAMPLELOOP_TEST_SECRET_REGISTRY;
    }
  });

  it('a missing file or unset variable is a configuration error naming the setting and the reference', () => {
    const missing = join(dir, 'nope');
    expect(() => parseConfig(kafkaConfig({ 'sasl.password': { file: missing } }))).toThrow(ConfigError);
    expect(() => parseConfig(kafkaConfig({ 'sasl.password': { file: missing } }))).toThrow(/kafka\.librdkafka\.sasl\.password: cannot read the secret file .*nope \(ENOENT\)/);
    expect(() => parseConfig(kafkaConfig({}, { password: { env: 'SAMPLELOOP_TEST_SECRET_UNSET' } }))).toThrow(/kafka\.schemaRegistry\.password: environment variable SAMPLELOOP_TEST_SECRET_UNSET is not set/);
  });

  it('an error never shows the value of another secret in the same settings', () => {
    const file = join(dir, 'present.password');
    writeFileSync(file, 'do-not-print-me');
    let message = '';
    try {
      parseConfig(kafkaConfig({ 'sasl.password': { file }, 'ssl.key.password': { env: 'SAMPLELOOP_TEST_SECRET_UNSET' } }));
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('ssl.key.password');
    expect(message).not.toContain('do-not-print-me');
  });
});
