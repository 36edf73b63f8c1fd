/** What `export samples` does: read the samples (all latest revisions, or a trigger's snapshot) and write them. */
import { currentSnapshot, latestSamples, snapshotSamples } from '../access/samples.js';
import { errorMessage, UsageError } from '../engine/errors.js';
import type { TrainingSnapshot } from '../schemas/types.js';
import { configFrom, withLogAccess, type CommonOptions } from './context.js';
import { writeSamples, type SampleFormat } from './sample-table.js';

/** `--snapshot`: a RetrainTrigger record (category + snapshot) or a bare snapshot (then --category is needed). */
export function parseSnapshotOption(text: string, category: string | undefined): { category: string; snapshot: Pick<TrainingSnapshot, 'topic' | 'offsets'> & { sampleCount?: number } } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--snapshot: not JSON (${errorMessage(err)}); give a retrain-triggers record, e.g. the output of "sampleloop consume retrain-triggers"`);
  }
  const obj = parsed as Record<string, unknown> | null;
  const record = obj !== null && typeof obj === 'object' && typeof obj.snapshot === 'object' ? obj : undefined;
  const snap = (record ? record.snapshot : obj) as Record<string, unknown> | null;
  const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (
    snap === null || typeof snap !== 'object' || typeof snap.topic !== 'string' || !Array.isArray(snap.offsets) ||
    !snap.offsets.every((o: unknown) => typeof o === 'object' && o !== null && isCount((o as Record<string, unknown>).partition) && isCount((o as Record<string, unknown>).offset))
  ) {
    throw new UsageError('--snapshot: expected a retrain-triggers record {"category", "snapshot": {"topic", "offsets": [{"partition", "offset"}], "sampleCount"}} or its snapshot');
  }
  const fromRecord = typeof record?.category === 'string' ? record.category : undefined;
  if (fromRecord !== undefined && category !== undefined && fromRecord !== category) throw new UsageError(`--category "${category}" differs from the trigger's category "${fromRecord}"`);
  const chosen = fromRecord ?? category;
  if (chosen === undefined) throw new UsageError('--snapshot without a trigger record needs --category (a snapshot covers one category)');
  const offsets = (snap.offsets as Array<{ partition: number; offset: number }>).map((o) => ({ partition: o.partition, offset: o.offset }));
  return { category: chosen, snapshot: { topic: snap.topic, offsets, ...(isCount(snap.sampleCount) ? { sampleCount: snap.sampleCount } : {}) } };
}

export interface ExportSamplesRun extends CommonOptions {
  out: string;
  category?: string;
  snapshot?: string;
  format: SampleFormat;
}

export async function exportSamples(opts: ExportSamplesRun, out: (line: string) => void): Promise<void> {
  const config = configFrom(opts);
  const chosen = opts.snapshot !== undefined ? parseSnapshotOption(opts.snapshot, opts.category) : undefined;
  const { samples, undecodable, snapshot } = await withLogAccess(
    config,
    async (access) => {
      if (chosen) return { ...(await snapshotSamples(access, chosen.snapshot, chosen.category)), snapshot: chosen.snapshot };
      // fail with a clear message when nothing has made samples yet
      await currentSnapshot(access, config.topics.samples);
      return { ...(await latestSamples(access, config.topics.samples, opts.category)), snapshot: undefined };
    },
    { readOnly: true },
  );
  if (undecodable > 0) process.stderr.write(`warning: ${undecodable} record(s) on the samples topic are not samples and were left out\n`);
  if (snapshot?.sampleCount !== undefined && snapshot.sampleCount !== samples.length) {
    process.stderr.write(`warning: the trigger counted ${snapshot.sampleCount} samples, the snapshot now holds ${samples.length} (compaction or retention removed some)\n`);
  }
  let written;
  try {
    written = writeSamples(opts.out, opts.format, samples);
  } catch (err) {
    throw new UsageError(`cannot write ${opts.out}: ${errorMessage(err)}`);
  }
  out(JSON.stringify({ out: opts.out, format: opts.format, rows: written.rows, columns: written.columns.length, ...(chosen ? { category: chosen.category, snapshot: chosen.snapshot } : opts.category ? { category: opts.category } : {}) }));
}
