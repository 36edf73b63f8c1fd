import { decodeEntry, encodeEntry } from '../../engine/embedded/log-codec.js';
import type { OutputRecord } from '../../engine/record.js';
import { SIDE_OUTPUTS, type ReplayOutput, type ReplaySink } from './sink.js';
import type { ReplayStaging } from '../staging.js';

/** Staging streams of side outputs held back until the end (after the two input streams). */
const DEFERRED_STREAM_BASE = 16;

/**
 * Routes the topology's outputs to the sink. Samples are kept in the scratch database as the latest
 * per request ID (what compaction keeps) and written at the end in request-ID order; side outputs go
 * straight to the sink when it can take writes back (files), otherwise they are held in the scratch
 * database in order and written at the end.
 */
export class ReplayOutputs {
  readonly written: Record<ReplayOutput, number> = { samples: 0, unmatched: 0, orphans: 0, late: 0, review: 0, deadLetters: 0 };
  samplesEmitted = 0;
  private deferred = 0;
  private readonly byTopic: Map<string, ReplayOutput>;

  constructor(
    private readonly sink: ReplaySink,
    private readonly staging: ReplayStaging,
    topics: Record<ReplayOutput, string>,
  ) {
    this.byTopic = new Map(Object.entries(topics).map(([output, topic]) => [topic, output as ReplayOutput]));
  }

  async add(records: readonly OutputRecord[]): Promise<void> {
    for (const record of records) {
      const output = this.byTopic.get(record.topic);
      if (output === undefined) continue;
      if (output === 'samples') {
        if (record.key === null) continue;
        this.samplesEmitted++;
        this.staging.putLatest(record.key, encodeEntry(record));
      } else if (this.sink.revocable) {
        await this.sink.write(output, record);
        this.written[output]++;
      } else {
        this.deferred++;
        this.staging.add(DEFERRED_STREAM_BASE + SIDE_OUTPUTS.indexOf(output), 0, encodeEntry(record));
      }
    }
  }

  /** Records `finish` will write (an upper bound: samples count every revision). */
  get pending(): number {
    return this.samplesEmitted + this.deferred;
  }

  /** Writes the latest sample per request ID, then the held-back side outputs; `progress` after each record. */
  async finish(progress: (done: number) => void, checkAborted: () => void): Promise<void> {
    let done = 0;
    for (const page of this.staging.latest()) {
      checkAborted();
      for (const [key, value] of page) {
        const entry = decodeEntry(value);
        await this.sink.write('samples', { topic: '', key, value: entry.value, timestamp: entry.timestamp, headers: entry.headers });
        this.written.samples++;
        progress(++done);
      }
    }
    if (this.deferred === 0) return;
    for (const output of SIDE_OUTPUTS) {
      for (const page of this.staging.sorted(DEFERRED_STREAM_BASE + SIDE_OUTPUTS.indexOf(output))) {
        checkAborted();
        for (const { value } of page) {
          const entry = decodeEntry(value);
          await this.sink.write(output, { topic: '', key: entry.key, value: entry.value, timestamp: entry.timestamp, headers: entry.headers });
          this.written[output]++;
          progress(++done);
        }
      }
    }
  }
}
