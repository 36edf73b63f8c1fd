import { decodeEntry, encodeEntry } from '../engine/embedded/log-codec.js';
import type { ReplayRecord } from './input/batch.js';
import { FEEDBACK_STREAM, PREDICTIONS_STREAM } from './input/records.js';
import type { ReplayStaging, StagedRecord } from './staging.js';

/** Stages a record for the on-disk sort (records must come in archive order: ties keep it). */
export function stageRecord(staging: ReplayStaging, record: ReplayRecord): void {
  staging.add(record.stream, record.timestamp, encodeEntry({ timestamp: record.timestamp, key: record.key, value: record.value, headers: {} }));
}

/**
 * The staged records in replay order, in pages: the two sorted streams merged by event time,
 * predictions first on equal times — the order the merge of input/merge.ts produces.
 */
export function* sortedRecords(staging: ReplayStaging): Generator<ReplayRecord[]> {
  const predictions = pager(staging.sorted(PREDICTIONS_STREAM));
  const feedback = pager(staging.sorted(FEEDBACK_STREAM));
  let page: ReplayRecord[] = [];
  for (;;) {
    const p = predictions.peek();
    const f = feedback.peek();
    if (p === undefined && f === undefined) break;
    const takePrediction = f === undefined || (p !== undefined && p.timestamp <= f.timestamp);
    const staged = takePrediction ? predictions.take() : feedback.take();
    const entry = decodeEntry(staged.value);
    page.push({ stream: takePrediction ? PREDICTIONS_STREAM : FEEDBACK_STREAM, timestamp: staged.timestamp, key: entry.key as Buffer, value: entry.value as Buffer });
    if (page.length >= 1_000) {
      yield page;
      page = [];
    }
  }
  if (page.length > 0) yield page;
}

function pager(pages: Generator<StagedRecord[]>): { peek(): StagedRecord | undefined; take(): StagedRecord } {
  let current: StagedRecord[] = [];
  let at = 0;
  const fill = (): void => {
    while (at >= current.length) {
      const next = pages.next();
      if (next.done) return;
      current = next.value;
      at = 0;
    }
  };
  return {
    peek: () => {
      fill();
      return current[at];
    },
    take: () => {
      fill();
      return current[at++] as StagedRecord;
    },
  };
}
