/**
 * Starts a real single-node Kafka broker and an Apicurio schema registry (Confluent API) for
 * integration tests, through scripts/kafka/local.sh. See docs/local-kafka.md.
 *
 * By default every call gets its own free ports and a temporary run dir, so tests never touch a
 * broker a developer started by hand on the default ports.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, SampleloopError } from '../../engine/errors.js';

export interface LocalKafkaOptions {
  /** Broker (PLAINTEXT) port; a free port when omitted. */
  port?: number;
  /** Registry HTTP port; a free port when omitted. */
  registryPort?: number;
  /** Where data, configs, logs and pid files go; a fresh temp dir (deleted by stop) when omitted. */
  runDir?: string;
  /** Extra broker settings (SAMPLELOOP_KAFKA_BROKER_PROPERTIES), e.g. a short log.retention.check.interval.ms. */
  brokerProperties?: Record<string, string | number>;
  /** `sasl_ssl`: the client listener is SASL_SSL (SCRAM-SHA-512), see `LocalKafka.secured`. */
  security?: 'plaintext' | 'sasl_ssl';
}

/** What a client of a `sasl_ssl` broker needs (local.sh prints it); the password is in a file. */
export interface SecuredListener {
  securityProtocol: string;
  saslMechanisms: string;
  saslUsername: string;
  saslPasswordFile: string;
  sslCaLocation: string;
  /** The broker's PLAINTEXT listener on 127.0.0.1 for its own traffic (test tooling may use it). */
  internalBootstrap: string;
  /** The broker's certificate and key (SAN 127.0.0.1), signed by the CA at sslCaLocation: e.g. for a TLS proxy. */
  certificate: string;
  key: string;
}

export interface LocalKafka {
  /** `127.0.0.1:PORT` */
  bootstrap: string;
  /** `http://127.0.0.1:PORT/apis/ccompat/v7` */
  registryUrl: string;
  runDir: string;
  /** Stops broker and registry; deletes the run dir if the harness created it. Idempotent. */
  stop(): Promise<void>;
  /** Set when started with `security: 'sasl_ssl'`. */
  secured?: SecuredListener;
  /** Stops and starts only the broker, on the same data and ports; it stays down at least `downMs` (default 0). */
  restartBroker(downMs?: number): Promise<void>;
}

interface ScriptResult {
  code: number;
  stdout: string;
  stderr: string;
}

const SCRIPT_RELATIVE = join('scripts', 'kafka', 'local.sh');

/** Walks up from this file so it also works when run from a compiled copy under dist/. */
function findScript(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, SCRIPT_RELATIVE);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new ConfigError(`cannot find ${SCRIPT_RELATIVE} above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

function runScript(args: string[], env: NodeJS.ProcessEnv): Promise<ScriptResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('bash', [findScript(), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? 1, stdout, stderr }));
  });
}

async function runScriptOrThrow(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const result = await runScript(args, env);
  if (result.code !== 0) {
    throw new SampleloopError('SL_KAFKA', `local.sh ${args.join(' ')} failed (exit ${result.code}):\n${result.stderr.trim()}`);
  }
  return result.stdout;
}

function outputValue(stdout: string, key: string): string {
  const line = stdout.split('\n').find((l) => l.startsWith(`${key}=`));
  if (line === undefined) throw new SampleloopError('SL_KAFKA', `local.sh printed no ${key}= line:\n${stdout}`);
  return line.slice(key.length + 1).trim();
}

/** Distinct ports that were free a moment ago (the OS hands out ephemeral ports round-robin). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolvePromise, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolvePromise(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

/** Instances still running, stopped synchronously if the test process exits without calling stop(). */
const running = new Map<string, NodeJS.ProcessEnv>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const env of running.values()) {
      spawnSync('bash', [findScript(), 'stop'], { env, stdio: 'ignore' });
    }
  });
}

export async function startLocalKafka(opts: LocalKafkaOptions = {}): Promise<LocalKafka> {
  for (const [name, value] of [['port', opts.port], ['registryPort', opts.registryPort]] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < 1 || value > 65535)) {
      throw new ConfigError(`startLocalKafka: ${name} must be an integer port 1..65535, got ${value}`);
    }
  }
  const [freeBroker, freeController, freeRegistry, freeInternal] = await freePorts(4);
  const port = opts.port ?? freeBroker!;
  const controllerPort = opts.port === undefined ? freeController! : opts.port + 1;
  const registryPort = opts.registryPort ?? freeRegistry!;
  const internalPort = opts.port === undefined ? freeInternal! : opts.port + 2;
  const ownsRunDir = opts.runDir === undefined;
  const runDir = resolve(opts.runDir ?? mkdtempSync(join(tmpdir(), 'sampleloop-kafka-')));

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SAMPLELOOP_KAFKA_PORT: String(port),
    SAMPLELOOP_KAFKA_CONTROLLER_PORT: String(controllerPort),
    SAMPLELOOP_REGISTRY_PORT: String(registryPort),
    SAMPLELOOP_KAFKA_RUN_DIR: runDir,
    SAMPLELOOP_KAFKA_SECURITY: opts.security ?? 'plaintext',
    SAMPLELOOP_KAFKA_INTERNAL_PORT: String(internalPort),
    SAMPLELOOP_KAFKA_BROKER_PROPERTIES: Object.entries(opts.brokerProperties ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join('\n'),
  };

  installExitHook();
  running.set(runDir, env);
  let stdout: string;
  try {
    stdout = await runScriptOrThrow(['start'], env);
  } catch (err) {
    await runScript(['stop'], env);
    running.delete(runDir);
    if (ownsRunDir) rmSync(runDir, { recursive: true, force: true });
    throw err;
  }
  const bootstrap = outputValue(stdout, 'bootstrap');
  const registryUrl = outputValue(stdout, 'registry');
  const secured: SecuredListener | undefined =
    opts.security === 'sasl_ssl'
      ? {
          securityProtocol: outputValue(stdout, 'security.protocol'),
          saslMechanisms: outputValue(stdout, 'sasl.mechanisms'),
          saslUsername: outputValue(stdout, 'sasl.username'),
          saslPasswordFile: outputValue(stdout, 'sasl.password.file'),
          sslCaLocation: outputValue(stdout, 'ssl.ca.location'),
          internalBootstrap: `127.0.0.1:${internalPort}`,
          certificate: join(runDir, 'tls', 'broker.pem'),
          key: join(runDir, 'tls', 'broker.key'),
        }
      : undefined;

  let stopped = false;
  return {
    bootstrap,
    registryUrl,
    runDir,
    ...(secured ? { secured } : {}),
    async stop() {
      if (stopped) return;
      stopped = true;
      await runScriptOrThrow(['stop'], env);
      running.delete(runDir);
      if (ownsRunDir) rmSync(runDir, { recursive: true, force: true });
    },
    async restartBroker(downMs = 0) {
      if (stopped) throw new SampleloopError('SL_KAFKA', 'restartBroker called after stop()');
      await runScriptOrThrow(['stop', 'broker'], env);
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      const again = outputValue(await runScriptOrThrow(['start', 'broker'], env), 'bootstrap');
      if (again !== bootstrap) {
        throw new SampleloopError('SL_KAFKA', `broker came back on ${again}, expected ${bootstrap}`);
      }
    },
  };
}

/**
 * True when startLocalKafka can work here: java is installed and the jars are cached or mvn can
 * fetch them. SAMPLELOOP_SKIP_KAFKA=1 forces false (for machines where the tests should not run).
 */
export function kafkaAvailable(): boolean {
  if (process.env.SAMPLELOOP_SKIP_KAFKA === '1') return false;
  const result = spawnSync('bash', [findScript(), 'check'], { env: process.env, stdio: 'ignore', timeout: 30_000 });
  return result.status === 0;
}
