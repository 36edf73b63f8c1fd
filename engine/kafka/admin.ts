import { ConfigError } from '../errors.js';
import type { Logger } from '../logger.js';
import { AdminClient, call, ERR, KafkaError, type IAdminClient, type LibrdkafkaSettings } from './client.js';

export interface TopicSpec {
  name: string;
  partitions: number;
  compact: boolean;
  /** Never delete records by age (`retention.ms=-1`), for a delete-policy topic whose history is the point (the model ledger). */
  keepForever?: boolean;
  /**
   * `message.timestamp.type=LogAppendTime`: the broker stamps records with the time it appends them,
   * so time-based retention counts from when a record was written, not from its (maybe weeks old)
   * event time, and the broker never refuses a record for its timestamp.
   */
  appendTime?: boolean;
}

/** Creates missing topics (compacted where required) and reports the partition counts of all of them. */
export class KafkaAdmin {
  private readonly admin: IAdminClient;

  private readonly bootstrap: string;

  /** The last authentication or TLS failure the client reported (its text names no secret). */
  private securityFailure: { kind: 'authentication' | 'tls'; message: string } | undefined;

  constructor(settings: LibrdkafkaSettings, private readonly logger: Logger) {
    this.admin = AdminClient.create({ ...settings } as Parameters<typeof AdminClient.create>[0], {
      'event.error': (err: { message?: string }) => this.noteSecurityFailure(String(err?.message ?? '')),
    } as never);
    this.bootstrap = String(settings['bootstrap.servers'] ?? '(not set)');
  }

  private noteSecurityFailure(message: string): void {
    if (/authentication|sasl/i.test(message)) this.securityFailure = { kind: 'authentication', message };
    else if (/ssl|tls|certificate|handshake/i.test(message)) this.securityFailure = { kind: 'tls', message };
  }

  async topicNames(): Promise<string[]> {
    return (await this.listTopics()).filter((t) => !t.startsWith('__'));
  }

  /** The first call to the cluster: its failure says where sampleloop looked and which setting to check. */
  private async listTopics(): Promise<string[]> {
    try {
      return await call<string[]>('listing topics', (cb) => this.admin.listTopics({ timeout: 10_000 }, cb));
    } catch (err) {
      if (!(err instanceof KafkaError)) throw err;
      const security = this.securityFailure;
      if (security?.kind === 'authentication') {
        throw new KafkaError(
          `the Kafka cluster at ${this.bootstrap} refused the credentials (${security.message}): check kafka.librdkafka["sasl.username"] and kafka.librdkafka["sasl.password"] (and "sasl.mechanisms")`,
          err.cause,
        );
      }
      if (security?.kind === 'tls') {
        throw new KafkaError(
          `the TLS connection to the Kafka cluster at ${this.bootstrap} failed (${security.message}): check kafka.librdkafka["ssl.ca.location"] (the CA that signed the broker's certificate) and "security.protocol"`,
          err.cause,
        );
      }
      throw new KafkaError(`cannot reach the Kafka cluster at ${this.bootstrap} (kafka.bootstrapServers): is it up, and is the address right?`, err.cause);
    }
  }

  async partitionCounts(topics: string[]): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    if (topics.length === 0) return counts;
    const existing = new Set(await this.listTopics());
    const present = topics.filter((t) => existing.has(t));
    if (present.length === 0) return counts;
    const described = await call<Array<{ name: string; partitions: unknown[] }>>('describing topics', (cb) =>
      this.admin.describeTopics(present, { timeout: 10_000 }, cb as never),
    );
    for (const d of described) counts.set(d.name, d.partitions.length);
    return counts;
  }

  /**
   * Creates each missing topic, compacted where required. Existing topics are used as they are: this
   * client has no DescribeConfigs, so a pre-created `samples` topic or changelog that is not compacted
   * is not detected (docs/kafka.md says to create them with cleanup.policy=compact).
   */
  async ensureTopics(specs: TopicSpec[], replicationFactor: number): Promise<Map<string, number>> {
    const counts = await this.partitionCounts(specs.map((s) => s.name));
    const created: TopicSpec[] = [];
    for (const spec of specs) {
      if (counts.has(spec.name)) continue;
      const config: Record<string, string> = {
        'cleanup.policy': spec.compact ? 'compact' : 'delete',
        ...(spec.keepForever ? { 'retention.ms': '-1' } : {}),
        ...(spec.appendTime ? { 'message.timestamp.type': 'LogAppendTime' } : {}),
      };
      try {
        await call('creating topic', (cb) =>
          this.admin.createTopic({ topic: spec.name, num_partitions: spec.partitions, replication_factor: replicationFactor, config }, 30_000, cb),
        );
        this.logger.info({ topic: spec.name, partitions: spec.partitions, compact: spec.compact, ...(spec.appendTime ? { timestampType: 'LogAppendTime' } : {}) }, 'created topic');
        created.push(spec);
      } catch (err) {
        if (!(err instanceof KafkaError && err.kafkaCode === ERR.TOPIC_ALREADY_EXISTS)) throw err;
      }
      counts.set(spec.name, spec.partitions);
    }
    await this.awaitLeaders(created);
    return counts;
  }

  /**
   * Waits until every partition of freshly created topics has a leader. A client that asks for a
   * topic's metadata earlier can cache it without partitions and then fail with "Unknown partition"
   * until its metadata expires (metadata.max.age.ms, 15 min by default).
   */
  private async awaitLeaders(specs: TopicSpec[], timeoutMs = 30_000): Promise<void> {
    if (specs.length === 0) return;
    const deadline = Date.now() + timeoutMs;
    let pending = specs.map((s) => s.name);
    for (;;) {
      const described = await call<Array<{ name: string; partitions: Array<{ leader?: { id?: number } | number | null }> }>>('describing topics', (cb) =>
        this.admin.describeTopics(pending, { timeout: 10_000 }, cb as never),
      ).catch(() => []);
      const ready = new Set(
        described
          .filter((d) => {
            const want = specs.find((s) => s.name === d.name)?.partitions ?? 0;
            return d.partitions.length >= want && d.partitions.every((p) => (typeof p.leader === 'number' ? p.leader : (p.leader?.id ?? -1)) >= 0);
          })
          .map((d) => d.name),
      );
      pending = pending.filter((t) => !ready.has(t));
      if (pending.length === 0) return;
      if (Date.now() > deadline) throw new KafkaError(`topics ${pending.join(', ')} were created but have no leader after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  close(): void {
    this.admin.disconnect();
  }
}

export function requireCoPartitioned(topology: string, counts: ReadonlyArray<readonly [string, number]>): number {
  const distinct = new Set(counts.map(([, n]) => n));
  if (distinct.size > 1) {
    throw new ConfigError(
      `topology "${topology}" joins ${counts.map(([t, n]) => `${t} (${n} partitions)`).join(', ')}: co-partitioned topics need the same partition count. ` +
        'Increase the smaller ones with `kafka-topics --alter --partitions N` (before any data is keyed into them) or recreate them, so every request ID meets in one task.',
    );
  }
  return counts[0]?.[1] ?? 1;
}
