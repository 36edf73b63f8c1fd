/**
 * A secured cluster, as banks run them (issue 11 part 5): the broker's client listener is SASL_SSL
 * (SCRAM-SHA-512 over TLS, certificates made by local.sh with openssl at start), the schema registry
 * is reached over HTTPS with basic auth (a TLS + basic-auth proxy in front of Apicurio, which has no
 * basic auth of its own). sampleloop gets the Kafka password from a file and the registry password
 * from an environment variable. The samples are exact; a wrong password ends `run` with exit 1 and
 * an error naming the setting; no password appears in a log line, `inspect` or the health details.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../config/config.js';
import { ensureBuilt, ROOT } from '../helpers/dist.js';
import { kafkaAvailable, startLocalKafka, type LocalKafka } from './harness.js';
import {
  canonicalSteps,
  createTestApp,
  differences,
  historyByKey,
  InputDriver,
  kafkaEndpoints,
  otherOutputDifferences,
  readKafkaOutputs,
  runEmbedded,
  startInProcess,
  testTraffic,
  type TestApp,
} from './helpers.js';
import { startRegistryProxy, type RegistryProxy } from './registry-proxy.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 2;
const REGISTRY_USER = 'sampleloop-registry';
const REGISTRY_PASSWORD_ENV = 'SAMPLELOOP_TEST_REGISTRY_PASSWORD';

async function runCli(args: string[], env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SAMPLELOOP')) childEnv[k] = v;
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'sampleloop.js'), ...args], { cwd: ROOT, env: { ...childEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stderr, stdout };
}

describe.skipIf(endpoints === null || !kafkaAvailable())('Kafka mode on a secured cluster (SASL_SSL + HTTPS registry with basic auth)', () => {
  let local: LocalKafka | undefined;
  let proxy: RegistryProxy | undefined;
  const apps: TestApp[] = [];
  const registryPassword = randomBytes(18).toString('base64url');
  beforeAll(async () => {
    await ensureBuilt();
    local = await startLocalKafka({ security: 'sasl_ssl' });
    const secured = local.secured!;
    proxy = await startRegistryProxy({ upstream: local.registryUrl, certificate: secured.certificate, key: secured.key, username: REGISTRY_USER, password: registryPassword });
    process.env[REGISTRY_PASSWORD_ENV] = registryPassword;
  }, 180_000);
  afterAll(async () => {
    delete process.env[REGISTRY_PASSWORD_ENV];
    await proxy?.close();
    await local?.stop();
    apps.forEach((a) => a.cleanup());
  }, 120_000);

  /** The app's configuration: only the secured listener and the HTTPS registry, secrets by reference. */
  function securedConfig(test: TestApp, instanceId: string, passwordFile: string): ConfigInput {
    const secured = local!.secured!;
    const base = test.config({ instanceId, guarantee: 'exactly_once' });
    return {
      ...base,
      kafka: {
        ...base.kafka,
        bootstrapServers: local!.bootstrap,
        librdkafka: {
          ...base.kafka?.librdkafka,
          'security.protocol': secured.securityProtocol,
          'sasl.mechanisms': secured.saslMechanisms,
          'sasl.username': secured.saslUsername,
          'sasl.password': { file: passwordFile },
          'ssl.ca.location': secured.sslCaLocation,
        },
        schemaRegistry: { url: proxy!.url, username: REGISTRY_USER, password: { env: REGISTRY_PASSWORD_ENV }, caLocation: secured.sslCaLocation },
      },
    };
  }

  it('gives exactly the samples of the embedded mode; no password in logs, health or inspect', async () => {
    const secured = local!.secured!;
    const kafkaPassword = readFileSync(secured.saslPasswordFile, 'utf8').trim();
    // Test tooling (input producer, output reader) uses the broker's internal listener and the registry directly.
    const tooling = { bootstrap: secured.internalBootstrap, registryUrl: local!.registryUrl };
    const steps = canonicalSteps(testTraffic(919, 600), 150);
    const expected = await runEmbedded(steps, PARTITIONS);
    const test = createTestApp(tooling, 'secure', PARTITIONS);
    apps.push(test);
    const config = securedConfig(test, 'secure-1', secured.saslPasswordFile);
    const app = await startInProcess(config);
    const driver = await InputDriver.connect({ bootstrap: tooling.bootstrap, group: test.run, topics: test.topics, partitions: PARTITIONS });
    let health = '';
    try {
      await Promise.race([driver.drive(steps), app.failed]);
      health = JSON.stringify(app.app.runtime.health());
    } finally {
      await driver.close();
      await app.stop();
    }
    const actual = await readKafkaOutputs(tooling, test.topics, PARTITIONS);
    expect(actual.samples.length).toBeGreaterThan(0);
    expect(differences(historyByKey(actual.samples), historyByKey(expected.samples))).toBe('');
    expect(otherOutputDifferences(actual, expected)).toBe('');

    const logs = JSON.stringify(app.logs);
    for (const secret of [kafkaPassword, registryPassword]) {
      expect(logs).not.toContain(secret);
      expect(health).not.toContain(secret);
    }

    const file = join(test.dir, 'secured.json');
    writeFileSync(file, JSON.stringify(config));
    const inspect = await runCli(['inspect', '--json', '--config', file], { [REGISTRY_PASSWORD_ENV]: registryPassword }, 90_000);
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(inspect.stdout).toContain(test.topics.samples);
    for (const secret of [kafkaPassword, registryPassword]) expect(inspect.stdout + inspect.stderr).not.toContain(secret);
  }, 300_000);

  it('a wrong Kafka password: run exits 1 naming kafka.librdkafka["sasl.password"], and never prints it', async () => {
    const test = createTestApp({ bootstrap: local!.secured!.internalBootstrap, registryUrl: local!.registryUrl }, 'secure-wrong', PARTITIONS);
    apps.push(test);
    const wrong = `wrong-${randomBytes(9).toString('base64url')}`;
    const wrongFile = join(test.dir, 'wrong.password');
    writeFileSync(wrongFile, `${wrong}\n`, { mode: 0o600 });
    const file = join(test.dir, 'wrong.json');
    writeFileSync(file, JSON.stringify(securedConfig(test, 'secure-wrong', wrongFile)));
    const r = await runCli(['run', '--config', file], { [REGISTRY_PASSWORD_ENV]: registryPassword }, 120_000);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('refused the credentials');
    expect(r.stderr).toContain('kafka.librdkafka["sasl.password"]');
    expect(r.stdout + r.stderr).not.toContain(wrong);
  }, 180_000);

  it('a wrong registry password: run exits 1 naming kafka.schemaRegistry.username / password, and never prints it', async () => {
    const test = createTestApp({ bootstrap: local!.secured!.internalBootstrap, registryUrl: local!.registryUrl }, 'secure-wrong-registry', PARTITIONS);
    apps.push(test);
    const wrong = `wrong-${randomBytes(9).toString('base64url')}`;
    const file = join(test.dir, 'wrong-registry.json');
    writeFileSync(file, JSON.stringify(securedConfig(test, 'secure-wrong-registry', local!.secured!.saslPasswordFile)));
    const refusedBefore = proxy!.refused();
    const r = await runCli(['run', '--config', file], { [REGISTRY_PASSWORD_ENV]: wrong }, 120_000);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('HTTP 401: check kafka.schemaRegistry.username / password');
    expect(r.stdout + r.stderr).not.toContain(wrong);
    expect(proxy!.refused()).toBeGreaterThan(refusedBefore);
  }, 180_000);
});
