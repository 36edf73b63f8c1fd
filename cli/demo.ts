import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedApp } from '../engine/embedded/app.js';
import { directAccess } from '../engine/embedded/access.js';
import { parseConfig } from '../engine/config.js';
import { silentLogger } from '../engine/logger.js';
import type { OutputRecord } from '../engine/record.js';
import { loadDataset, type Dataset } from '../models/datasets/index.js';
import type { Feedback, LabeledSample, Prediction } from '../schemas/types.js';

export interface DemoOptions {
  dataDir?: string;
  requests: number;
  seed: number;
  quiet: boolean;
  out: (line: string) => void;
}

/** mulberry32: small, seeded, good enough for simulated traffic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Simulated {
  prediction: Prediction;
  feedback: Feedback[];
  truth: string;
}

const BASE_TIME = Date.UTC(2026, 0, 5, 9, 0, 0);

/** Live traffic over two real datasets, with a simulated model (≈85% right) and delayed, partial, sometimes corrected feedback. */
export function simulateTraffic(datasets: Dataset[], requests: number, seed: number): Simulated[] {
  const random = prng(seed);
  const out: Simulated[] = [];
  for (let i = 0; i < requests; i++) {
    const dataset = datasets[i % 3 === 2 ? 1 : 0] as Dataset;
    const row = dataset.rows[Math.floor(random() * dataset.rows.length)] as Dataset['rows'][number];
    const features: Record<string, number> = {};
    dataset.featureNames.forEach((name, j) => (features[name] = row.features[j] as number));
    const right = random() < 0.85;
    const others = dataset.classes.filter((c) => c !== row.label);
    const predictedLabel = right ? row.label : (others[Math.floor(random() * others.length)] as string);
    const scores: Record<string, number> = {};
    for (const c of dataset.classes) scores[c] = c === predictedLabel ? 0.8 : 0.2 / (dataset.classes.length - 1);
    const t = BASE_TIME + i * 250;
    const requestId = `req-${String(seed)}-${String(i).padStart(6, '0')}`;
    const prediction: Prediction = {
      requestId,
      category: dataset.name,
      features,
      attributes: { name: `Customer ${i}`, phone: `+44 7700 9${String(100000 + i).slice(-5)}`, idNumber: `ID${String(90000000 + i * 7)}`, channel: i % 2 ? 'mobile' : 'branch' },
      predictedLabel,
      scores,
      modelVersion: 'simulated-v0',
      modelHash: '',
      requestTimestamp: t,
      timestamp: t + 5,
    };
    const feedback: Feedback[] = [];
    const roll = random();
    const delay = 500 + Math.floor(random() * 20_000);
    if (roll >= 0.1) {
      const withLabel = dataset.classes.length > 2 ? random() < 0.75 : random() < 0.3;
      const first: Feedback = withLabel
        ? { requestId, timestamp: t + delay, source: 'back-office', actualLabel: row.label, correct: null }
        : { requestId, timestamp: t + delay, source: 'back-office', actualLabel: null, correct: predictedLabel === row.label };
      feedback.push(first);
      if (random() < 0.04) feedback.push({ requestId, timestamp: t + delay + 3_000, source: 'audit', actualLabel: row.label, correct: null });
    }
    out.push({ prediction, feedback, truth: row.label });
  }
  return out;
}

/** `sampleloop demo`: traffic → predictions + feedback topics → the join → samples, on the embedded default. */
export async function runDemo(options: DemoOptions): Promise<void> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'sampleloop-demo-'));
  const say = (line: string): void => {
    if (!options.quiet) options.out(line);
  };
  const config = parseConfig({
    dataDir,
    http: { port: 0 },
    join: { beforeMs: 1_000, afterMs: 60_000, graceMs: 5_000, idleAdvance: false },
    categories: { digits: { classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] }, 'breast-cancer': { classes: ['malignant', 'benign'] } },
  });
  const datasets = [loadDataset('digits'), loadDataset('breast-cancer')];
  say(`sampleloop demo — embedded mode, data in ${dataDir}`);
  say(`datasets: digits (${datasets[0]?.rows.length} rows, 10 classes), breast-cancer (${datasets[1]?.rows.length} rows, 2 classes)`);
  const traffic = simulateTraffic(datasets, options.requests, options.seed);
  const events: OutputRecord[] = [];
  for (const s of traffic) {
    events.push({ topic: config.topics.predictions, key: Buffer.from(s.prediction.requestId), value: Buffer.from(JSON.stringify(s.prediction)), timestamp: s.prediction.timestamp, headers: {} });
    for (const f of s.feedback) events.push({ topic: config.topics.feedback, key: Buffer.from(f.requestId), value: Buffer.from(JSON.stringify(f)), timestamp: f.timestamp, headers: {} });
  }
  events.sort((a, b) => a.timestamp - b.timestamp);
  // A few broken records, as real producers send them: they must end in the dead-letter topic.
  events.push({ topic: config.topics.feedback, key: null, value: Buffer.from('{"requestId": "req-broken", "timestamp": '), timestamp: events.at(-1)?.timestamp ?? BASE_TIME, headers: {} });
  events.push({ topic: config.topics.predictions, key: null, value: Buffer.from(JSON.stringify({ category: 'digits', features: {}, predictedLabel: '1', scores: {}, modelVersion: 'x', requestTimestamp: BASE_TIME, timestamp: BASE_TIME })), timestamp: BASE_TIME, headers: {} });

  const app = await startEmbeddedApp(config, { logger: silentLogger() });
  try {
    const chunk = 500;
    const started = Date.now();
    for (let i = 0; i < events.length; i += chunk) {
      app.log.append(events.slice(i, i + chunk));
      app.runtime.runUntilIdle();
      say(`  traffic: ${Math.min(i + chunk, events.length)}/${events.length} records processed`);
    }
    app.runtime.endOfInput();
    const seconds = (Date.now() - started) / 1000;
    const access = directAccess(app.log, app.registry);
    const topics = await access.topics();
    const count = (t: string): number => topics.find((x) => x.topic === t)?.records ?? 0;
    const samples = (await access.read(config.topics.samples)).map((r) => r.value as LabeledSample);
    const latest = new Map<string, LabeledSample>();
    for (const s of samples) latest.set(s.requestId, s);
    const truth = new Map(traffic.map((s) => [s.prediction.requestId, s.truth]));
    let right = 0;
    const bySource: Record<string, number> = {};
    for (const s of latest.values()) {
      if (truth.get(s.requestId) === s.label) right++;
      bySource[s.labelSource] = (bySource[s.labelSource] ?? 0) + 1;
    }
    const raw = new Set(traffic.flatMap((s) => [s.prediction.attributes.name, s.prediction.attributes.idNumber, s.prediction.attributes.phone]) as string[]);
    let leaks = 0;
    const scan = (value: unknown): void => {
      if (typeof value === 'string') {
        if (raw.has(value)) leaks++;
        else if (value.length > 64) for (const v of raw) if (value.includes(v)) leaks++;
      } else if (value !== null && typeof value === 'object') {
        for (const v of Object.values(value)) scan(v);
      }
    };
    for (const t of topics) {
      if (t.topic === config.topics.predictions || t.topic === config.topics.feedback) continue;
      for (const r of await access.read(t.topic)) scan(r);
    }
    options.out('');
    options.out(`processed ${events.length} input records in ${seconds.toFixed(2)} s`);
    options.out(`samples (compacted, keyed by requestId): ${latest.size} distinct (${samples.length} records incl. revisions) — ${JSON.stringify(bySource)}`);
    options.out(`label correctness vs ground truth: ${((100 * right) / Math.max(1, latest.size)).toFixed(2)}% of samples (the simulated model itself is ~85% right)`);
    options.out(`unmatched predictions: ${count(config.topics.unmatched)}, orphan feedback: ${count(config.topics.orphans)}, late: ${count(config.topics.late)}, review: ${count(config.topics.review)}, dead letters: ${count(config.topics.deadLetters)}`);
    options.out(`raw names, phones or ID numbers found in output topics: ${leaks}`);
    const example = latest.values().next().value;
    if (example) options.out(`example sample: ${JSON.stringify({ ...example, features: `{${Object.keys(example.features).length} features}` })}`);
    options.out('');
    options.out(`next: node bin/sampleloop.js consume samples --data-dir ${dataDir} --max 3`);
    options.out(`      node bin/sampleloop.js inspect --data-dir ${dataDir}`);
  } finally {
    await app.close();
  }
}
