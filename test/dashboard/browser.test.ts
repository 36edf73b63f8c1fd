/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The dashboard in a real browser: Debian's headless Chromium, driven by playwright-core, against the
 * demo's running engine (real ONNX models, feedback with corrections, unmatched predictions, dead
 * letters, the built-in trainer promoting versions while the page is open).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directAccess } from '../../access/embedded.js';
import type { EmbeddedApp } from '../../app/embedded.js';
import { runDemo } from '../../cli/demo.js';
import { readLedger } from '../../models/ledger.js';
import type { LabeledSample } from '../../schemas/types.js';

const CHROMIUM = process.env.SAMPLELOOP_CHROMIUM ?? '/usr/bin/chromium';
/** `SAMPLELOOP_SCREENSHOTS=docs/img` writes the README's screenshots there; by default they go to a temporary directory. */
const SHOTS = process.env.SAMPLELOOP_SCREENSHOTS;

interface Shown {
  samples: string;
  unmatched: string;
  deadLetters: string;
  accuracy: Record<string, { version: string; accuracy: string; text: string }>;
  panels: Record<string, number>;
  markers: Array<{ kind: string; category: string; version: string; text: string }>;
  drawnMarkers: number;
  ledgerAlarm: boolean;
}

interface EngineCounts {
  samples: number;
  unmatched: number;
  deadLetters: number;
  serving: Record<string, { version: string; accuracy: number | null }>;
}

async function shown(page: Page): Promise<Shown> {
  return page.evaluate(() => {
    const text = (id: string): string => document.getElementById(id)?.textContent ?? '';
    const num = (el: Element | null, attr: string): number => Number(el?.getAttribute(attr) ?? '0');
    const accuracy: Shown['accuracy'] = {};
    for (const el of document.querySelectorAll('#kpi-accuracy > span[id^="kpi-accuracy-"]')) {
      accuracy[el.id.slice('kpi-accuracy-'.length)] = { version: el.getAttribute('data-version') ?? '', accuracy: el.getAttribute('data-accuracy') ?? '', text: el.textContent ?? '' };
    }
    const panels: Record<string, number> = {};
    for (const id of ['traffic-charts', 'outcomes-chart', 'delay-chart', 'delay-histogram', 'accuracy-chart', 'lag-chart', 'commit-chart']) panels[id] = num(document.getElementById(id), 'data-points');
    panels['ledger-table'] = num(document.getElementById('ledger-table'), 'data-rows');
    panels['dead-letter-table'] = num(document.getElementById('dead-letter-table'), 'data-rows');
    panels.canvases = document.querySelectorAll('canvas').length;
    return {
      samples: text('kpi-samples'),
      unmatched: text('kpi-unmatched'),
      deadLetters: text('kpi-dead-letters'),
      accuracy,
      panels,
      markers: [...document.querySelectorAll('#accuracy-markers li')].map((li) => ({
        kind: li.getAttribute('data-kind') ?? '',
        category: li.getAttribute('data-category') ?? '',
        version: li.getAttribute('data-version') ?? '',
        text: li.textContent ?? '',
      })),
      drawnMarkers: num(document.getElementById('accuracy-chart'), 'data-markers'),
      ledgerAlarm: !(document.getElementById('ledger-alarm') as HTMLElement).hidden,
    };
  });
}

/** The engine's own counts: records on its output topics, and the live accuracy of each serving version from the samples topic. */
async function engineCounts(app: EmbeddedApp): Promise<EngineCounts> {
  const access = directAccess(app.log, app.registry);
  const { topics } = app.config;
  const count = async (topic: string): Promise<number> => (await access.read(topic)).length;
  const latest = new Map<string, LabeledSample>();
  for (const r of await access.read(topics.samples)) {
    const s = r.value as LabeledSample;
    const before = latest.get(s.requestId);
    if (!before || s.revision > before.revision) latest.set(s.requestId, s);
  }
  const serving: EngineCounts['serving'] = {};
  for (const [category, head] of (await readLedger(access, topics.models)).heads) {
    const labeled = [...latest.values()].filter((s) => s.category === category && s.modelVersion === head.version && s.labelSource !== 'DEFAULT');
    const confirmed = labeled.filter((s) => s.labelSource === 'CONFIRMED').length;
    serving[category] = { version: head.version, accuracy: labeled.length === 0 ? null : confirmed / labeled.length };
  }
  return { samples: await count(topics.samples), unmatched: await count(topics.unmatched), deadLetters: await count(topics.deadLetters), serving };
}

const fmt = (n: number): string => n.toLocaleString('en-US');

async function waitFor<T>(what: string, read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let value = await read();
  while (!ok(value)) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 250));
    value = await read();
  }
  return value;
}

describe('dashboard in Chromium', () => {
  let browser: Browser;
  let dataDir: string;
  let shots: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install Debian's chromium (scripts/setup.sh does) or set SAMPLELOOP_CHROMIUM`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    dataDir = mkdtempSync(join(tmpdir(), 'sampleloop-dashboard-browser-'));
    shots = SHOTS ?? mkdtempSync(join(tmpdir(), 'sampleloop-dashboard-shots-'));
    mkdirSync(shots, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    if (!SHOTS && shots) rmSync(shots, { recursive: true, force: true });
  });

  it('shows the running loop: every panel has data, the numbers are the engine\'s, a promotion during the test is marked', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
    });
    const refreshes = async (): Promise<number> => Number(await page.evaluate(() => document.body.dataset.refreshed ?? '0'));
    let before: Shown | undefined;

    await runDemo({
      dataDir: join(dataDir, 'demo'),
      requests: 500,
      seed: 7,
      quiet: true,
      chartPath: null,
      out: () => undefined,
      dashboard: {
        port: 0,
        onReady: async (url) => {
          await page.goto(url);
          await waitFor('the first refresh', refreshes, (n) => n >= 1);
          before = await shown(page);
        },
        afterTraffic: async (_url, app) => {
          const engine = await engineCounts(app);
          const want = (s: Shown): boolean =>
            s.samples === fmt(engine.samples) &&
            s.unmatched === fmt(engine.unmatched) &&
            s.deadLetters === fmt(engine.deadLetters) &&
            Object.entries(engine.serving).every(([category, e]) => s.accuracy[category]?.version === e.version);
          const after = await waitFor('the page to show the engine\'s counts', () => shown(page), want);

          // The numbers shown are the engine's own.
          expect(after.samples).toBe(fmt(engine.samples));
          expect(after.unmatched).toBe(fmt(engine.unmatched));
          expect(after.deadLetters).toBe(fmt(engine.deadLetters));
          expect(engine.samples).toBeGreaterThan(300);
          expect(engine.unmatched).toBeGreaterThan(0);
          expect(engine.deadLetters).toBe(3);
          for (const [category, e] of Object.entries(engine.serving)) {
            const s = after.accuracy[category];
            expect(s?.version, category).toBe(e.version);
            if (e.accuracy === null) {
              expect(s?.accuracy, category).toBe('');
            } else {
              expect(Number(s?.accuracy), category).toBeCloseTo(e.accuracy, 12);
              expect(s?.text, category).toContain(`${(100 * e.accuracy).toFixed(1)}%`);
            }
          }
          expect(Object.values(engine.serving).some((e) => e.accuracy !== null)).toBe(true);

          // Every panel renders data.
          for (const [panel, n] of Object.entries(after.panels)) expect(n, panel).toBeGreaterThan(0);

          // The page was open before the first model was published; promotions by the trainer appeared on the accuracy chart.
          expect(before?.markers).toEqual([]);
          const promoted = after.markers.filter((m) => m.kind === 'promoted' && m.version !== '1');
          expect(promoted.length).toBeGreaterThan(0);
          expect(promoted[0]?.text).toMatch(/holdout \d+\.\d% vs \d+\.\d% serving \(n=\d+\)/);
          expect(after.drawnMarkers).toBeGreaterThanOrEqual(promoted.length);
          expect(after.ledgerAlarm).toBe(false);

          // Hovering a promotion shows its holdout figures (the list is newest first: take the oldest, inside the plot).
          const marker = promoted[promoted.length - 1] as Shown['markers'][number];
          const at = await page.evaluate(async (m) => {
            const res = await fetch('/api/v1/series/accuracy');
            const body = (await res.json()) as { markers: Array<{ kind: string; category: string; version: string; at: number }> };
            return body.markers.find((x) => x.kind === 'promoted' && x.category === m.category && x.version === m.version)?.at ?? null;
          }, marker);
          expect(at).not.toBeNull();
          const box = await page.evaluate((t) => {
            const charts = (window as unknown as { __dashboardCharts?: Map<string, { plot: { valToPos(v: number, s: string): number; over: HTMLElement } }> }).__dashboardCharts;
            const p = charts?.get('accuracy')?.plot;
            if (!p) return null;
            const r = p.over.getBoundingClientRect();
            return { x: r.left + p.valToPos((t as number) / 1000, 'x'), y: r.top + r.height / 2 };
          }, at);
          expect(box).not.toBeNull();
          await page.mouse.move((box as { x: number }).x, (box as { y: number }).y);
          const tip = page.locator('#accuracy-tip');
          await tip.waitFor({ state: 'visible' });
          expect(await tip.textContent()).toMatch(/holdout \d+\.\d%/);
          await page.mouse.move(0, 0);

          await page.screenshot({ path: join(shots, 'dashboard-500-requests.png') });
          await page.screenshot({ path: join(shots, 'dashboard-500-requests-full.png'), fullPage: true });

          // A ledger record that fails verification turns the page loudly red.
          app.log.append([{ topic: app.config.topics.models, key: Buffer.from('digits'), value: Buffer.from('tampered'), timestamp: Date.now(), headers: {} }]);
          await waitFor('the ledger alarm', () => shown(page), (s) => s.ledgerAlarm);
          expect(await page.locator('#ledger-alarm').textContent()).toContain('MODEL LEDGER VERIFICATION FAILED');
          expect(await page.locator('#ledger-table tr.failed').count()).toBe(1);
          await page.screenshot({ path: join(shots, 'dashboard-ledger-failed.png'), clip: { x: 0, y: 0, width: 1280, height: 800 } });
          await waitFor('one more refresh', refreshes, (n) => n > 0);
        },
      },
    });
    expect(problems).toEqual([]);
  }, 180_000);
});
