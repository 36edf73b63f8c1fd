/**
 * `export samples`: the latest revision of every sample, or exactly the samples the trainer reads
 * for a trigger's snapshot, as Parquet (read back with pyarrow, an independent reader), CSV and JSON
 * lines; every row and value compared.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directAccess } from '../access/embedded.js';
import { openEmbeddedLog } from '../app/embedded.js';
import { parseConfig } from '../config/config.js';
import { loadDataset } from '../models/datasets/index.js';
import { embeddedTrainerLog, naturalCompare, readSnapshotSamples } from '../models/trainer-job.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import type { LabeledSample } from '../schemas/types.js';
import { runCli } from './helpers/cli-in-process.js';
import { pythonEnv, runPython } from './helpers/python-env.js';

const cancer = loadDataset('breast-cancer');
const FEATURES = cancer.featureNames.slice(0, 6);
const T0 = 1_750_000_000_000;

let dir: string;
let dataDir: string;
let python: string;
let written: LabeledSample[];
/** The samples topic's end offset after the first 150 records (the trigger's snapshot). */
const SNAPSHOT_END = 150;

function sample(i: number, revision: number, category: string): LabeledSample {
  const row = cancer.rows[i % cancer.rows.length]!;
  const features = Object.fromEntries(FEATURES.map((f, j) => [f, row.features[j] as number]));
  if (i % 17 === 0) delete features[FEATURES[2] as string]; // a sample lacking a feature: null in the table
  return {
    requestId: `req-${String(i).padStart(4, '0')}`,
    category,
    features,
    attributes: i % 3 === 0 ? { channel: i % 2 === 0 ? 'web' : 'branch, "north"', name: `tok:${i.toString(16)}` } : {},
    label: revision === 2 ? (row.label === 'benign' ? 'malignant' : 'benign') : row.label,
    labelSource: revision === 2 ? 'CORRECTED' : i % 5 === 0 ? 'DEFAULT' : 'CONFIRMED',
    predictedLabel: row.label,
    modelVersion: i % 2 === 0 ? '1' : '2',
    requestTimestamp: T0 + i * 1000,
    feedbackTimestamp: i % 5 === 0 ? null : T0 + i * 1000 + 500,
    revision,
    origin: i % 4 === 0 ? 'replay' : 'online',
  };
}

beforeAll(async () => {
  python = pythonEnv();
  dir = mkdtempSync(join(tmpdir(), 'sampleloop-export-'));
  dataDir = join(dir, 'data');
  const log = await openEmbeddedLog(parseConfig({ dataDir }));
  try {
    const access = directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db)));
    // 0..119 cancer, 120..149 other category; then revisions 2 of 0..19 and new samples 150..179 after the snapshot
    written = [
      ...Array.from({ length: 120 }, (_, i) => sample(i, 1, 'cancer')),
      ...Array.from({ length: 30 }, (_, i) => sample(120 + i, 1, 'other')),
      ...Array.from({ length: 20 }, (_, i) => sample(i, 2, 'cancer')),
      ...Array.from({ length: 30 }, (_, i) => sample(150 + i, 1, 'cancer')),
    ];
    await access.produceAvro!('samples', 'LabeledSample', written.map((s) => ({ key: s.requestId, value: s, timestamp: s.requestTimestamp })));
    // a tombstone removes req-0005 from the compacted view
    log.append([{ topic: 'samples', key: Buffer.from('req-0005'), value: null, timestamp: T0, headers: {} }]);
  } finally {
    await log.close();
  }
}, 20 * 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What the compacted topic holds: the last record per request ID, tombstones removed; sorted by request ID. */
function expectedLatest(category?: string): LabeledSample[] {
  const latest = new Map<string, LabeledSample>();
  for (const s of written) latest.set(s.requestId, s);
  latest.delete('req-0005');
  return [...latest.values()].filter((s) => category === undefined || s.category === category).sort((a, b) => a.requestId.localeCompare(b.requestId));
}

/** A sample as a table row: features by name (null when absent), attributes.<name>, times in epoch ms. */
function asRow(s: LabeledSample, attributeKeys: readonly string[]): Record<string, unknown> {
  return {
    requestId: s.requestId,
    category: s.category,
    label: s.label,
    labelSource: s.labelSource,
    predictedLabel: s.predictedLabel,
    modelVersion: s.modelVersion,
    origin: s.origin,
    revision: s.revision,
    requestTimestamp: s.requestTimestamp,
    feedbackTimestamp: s.feedbackTimestamp,
    ...Object.fromEntries(FEATURES.map((f) => [f, s.features[f] ?? null])),
    ...Object.fromEntries(attributeKeys.map((a) => [`attributes.${a}`, s.attributes[a] ?? null])),
  };
}

const READ_PARQUET = `
import json, sys
import pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
rows = []
for r in table.to_pylist():
    for k in ('requestTimestamp', 'feedbackTimestamp'):
        if r[k] is not None:
            r[k] = int(r[k].timestamp() * 1000 + 0.5)
    rows.append(r)
print(json.dumps({'schema': [(f.name, str(f.type)) for f in table.schema], 'rows': rows}))
`;

describe('export samples', () => {
  it('Parquet: every latest revision, one column per feature, read back by pyarrow value for value', async () => {
    const out = join(dir, 'all.parquet');
    const run = await runCli('export', 'samples', '--out', out, '--data-dir', dataDir);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const { schema, rows } = JSON.parse(runPython(python, READ_PARQUET, [out])) as { schema: Array<[string, string]>; rows: Array<Record<string, unknown>> };
    const expected = expectedLatest();
    expect(rows).toEqual(expected.map((s) => asRow(s, ['channel', 'name'])));
    expect(schema).toEqual([
      ['requestId', 'string'], ['category', 'string'], ['label', 'string'], ['labelSource', 'string'], ['predictedLabel', 'string'], ['modelVersion', 'string'], ['origin', 'string'],
      ['revision', 'int32'], ['requestTimestamp', 'timestamp[ms, tz=UTC]'], ['feedbackTimestamp', 'timestamp[ms, tz=UTC]'],
      ...[...FEATURES].sort(naturalCompare).map((f): [string, string] => [f, 'double']), ['attributes.channel', 'string'], ['attributes.name', 'string'],
    ]);
    expect(JSON.parse(run.stdout[0] as string)).toMatchObject({ rows: expected.length, format: 'parquet' });
  });

  it('--snapshot of a trigger: exactly the samples the trainer reads for it', async () => {
    const trigger = { triggerId: 't-1', category: 'cancer', servingVersion: '1', reason: 'new-samples', details: {}, createdAt: T0, snapshot: { topic: 'samples', offsets: [{ partition: 0, offset: SNAPSHOT_END }], sampleCount: 120 } };
    const out = join(dir, 'snapshot.parquet');
    const run = await runCli('export', 'samples', '--out', out, '--snapshot', JSON.stringify(trigger), '--data-dir', dataDir);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    // the trainer's own reader on the embedded log
    const log = await openEmbeddedLog(parseConfig({ dataDir }));
    let trainerSaw: LabeledSample[];
    try {
      const registry = new LocalSchemaRegistry(rocksRegistryStorage(log.db));
      await directAccess(log, registry).read('samples', { max: 1 }); // loads the writer schema into the registry's cache
      trainerSaw = await readSnapshotSamples(embeddedTrainerLog(log), (id) => registry.cached(id), trigger.snapshot, 'cancer');
    } finally {
      await log.close();
    }
    expect(trainerSaw).toHaveLength(120);
    expect(trainerSaw.every((s) => s.revision === 1)).toBe(true); // the revisions after the snapshot are not in it
    const { rows } = JSON.parse(runPython(python, READ_PARQUET, [out])) as { rows: Array<Record<string, unknown>> };
    expect(rows).toEqual(trainerSaw.map((s) => asRow(s, ['channel', 'name'])));
  });

  it('CSV and JSON lines of one category hold the same rows', async () => {
    const csvOut = join(dir, 'cancer.csv');
    const jsonOut = join(dir, 'cancer.jsonl');
    expect((await runCli('export', 'samples', '--category', 'cancer', '--out', csvOut, '--data-dir', dataDir)).code).toBe(0);
    expect((await runCli('export', 'samples', '--category', 'cancer', '--out', jsonOut, '--data-dir', dataDir)).code).toBe(0);
    const expected = expectedLatest('cancer').map((s) => asRow(s, ['channel', 'name']));
    const jsonRows = readFileSync(jsonOut, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(jsonRows).toEqual(expected);
    // pandas (through pyarrow's CSV reader) reads the CSV back to the same values
    const csvRows = JSON.parse(
      runPython(python, `
import json, sys
import pyarrow.csv as pc
t = pc.read_csv(sys.argv[1], convert_options=pc.ConvertOptions(strings_can_be_null=True, column_types={'modelVersion': 'string'}))
print(json.dumps(t.to_pylist()))
`, [csvOut]),
    ) as Array<Record<string, unknown>>;
    expect(csvRows).toEqual(expected);
  });

  it('a snapshot without a category is a usage error', async () => {
    const run = await runCli('export', 'samples', '--out', join(dir, 'x.parquet'), '--snapshot', '{"topic":"samples","offsets":[{"partition":0,"offset":3}],"sampleCount":3}', '--data-dir', dataDir);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('needs --category');
  });
});
