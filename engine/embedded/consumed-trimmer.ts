import type { EmbeddedLog } from './log.js';

interface Mark {
  at: number;
  /** `topic/partition` → the offset every group reading the topic has committed past. */
  offsets: Map<string, number>;
}

/**
 * Deletes the records of input topics once every consumer group reading them has committed past
 * them and `retentionMs` has passed since (so a record stays readable for a while after it was
 * processed). Each `run` notes how far the groups have committed; records below a note at least
 * `retentionMs` old are deleted. Notes live in memory: after a restart, trimming resumes
 * `retentionMs` later. Compacted topics are never trimmed this way.
 */
export class ConsumedInputTrimmer {
  private readonly marks: Mark[] = [];

  constructor(
    private readonly log: EmbeddedLog,
    private readonly topics: readonly string[],
    private readonly retentionMs: number,
  ) {}

  /** Notes the committed offsets now and trims what is due; returns the number of records deleted. */
  run(now: number): number {
    this.marks.push({ at: now, offsets: this.committedByEveryGroup() });
    let due: Mark | undefined;
    while (this.marks.length > 0 && (this.marks[0] as Mark).at <= now - this.retentionMs) due = this.marks.shift();
    if (due === undefined) return 0;
    let removed = 0;
    for (const [id, offset] of due.offsets) {
      const slash = id.lastIndexOf('/');
      removed += this.log.deleteBefore(id.slice(0, slash), Number(id.slice(slash + 1)), offset);
    }
    return removed;
  }

  private committedByEveryGroup(): Map<string, number> {
    const out = new Map<string, number>();
    const groups = this.log.consumerGroups();
    for (const topic of this.topics) {
      const config = this.log.topic(topic);
      if (config === undefined || config.compact) continue;
      const committed = (group: string, p: number): number | undefined => this.log.committedOffset(group, topic, p);
      // The groups reading this topic: those that have committed on any of its partitions.
      const readers = groups.filter((g) => Array.from({ length: config.partitions }, (_, p) => committed(g, p)).some((o) => o !== undefined));
      if (readers.length === 0) continue;
      for (let p = 0; p < config.partitions; p++) {
        out.set(`${topic}/${p}`, Math.min(...readers.map((g) => committed(g, p) ?? 0)));
      }
    }
    return out;
  }
}
