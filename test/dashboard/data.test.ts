import { describe, expect, it } from 'vitest';
import { TimeRing } from '../../app/dashboard/ring.js';
import { BUCKET_COUNT, LABEL_DELAY_BUCKETS, bucketOf, quantile } from '../../app/dashboard/delay-buckets.js';
import { LiveAccuracy } from '../../app/dashboard/live-accuracy.js';

describe('TimeRing', () => {
  it('sums counters per slot, keeps the last gauge value, and merges slots into steps', () => {
    const ring = new TimeRing(1000, 60);
    ring.add(10_000, 'x');
    ring.add(10_999, 'x', 2);
    ring.add(11_000, 'x', 5);
    ring.set(10_100, 'g', 1);
    ring.set(10_900, 'g', 7);
    ring.add(13_500, 'x', 1);
    const w = ring.window();
    expect(w.t).toEqual([10_000, 11_000, 12_000, 13_000]);
    expect(w.counter('x')).toEqual([3, 5, 0, 1]);
    expect(w.gauge('g')).toEqual([7, null, null, null]);
    const coarse = ring.window({ stepMs: 2000 });
    expect(coarse.t).toEqual([10_000, 12_000]);
    expect(coarse.counter('x')).toEqual([8, 1]);
    expect(coarse.gauge('g')).toEqual([7, null]);
    expect(ring.window({ from: 11_000 }).counter('x')).toEqual([5, 0, 1]);
    expect(ring.oldest()).toBe(10_000);
    expect(ring.newest()).toBe(13_000);
  });

  it('stays bounded: slots older than its capacity are recycled and late writes to them are dropped', () => {
    const ring = new TimeRing(1000, 3);
    for (let s = 0; s < 10; s++) ring.add(s * 1000, 'x', s);
    ring.add(2000, 'x', 100); // older than the ring keeps
    const w = ring.window();
    expect(w.t).toEqual([7000, 8000, 9000]);
    expect(w.counter('x')).toEqual([7, 8, 9]);
    expect(ring.oldest()).toBe(7000);
  });

  it('merges histograms and lists names by prefix', () => {
    const ring = new TimeRing(1000, 10);
    ring.observe(0, 'h', 1, 3);
    ring.observe(500, 'h', 1, 3);
    ring.observe(1000, 'h', 2, 3);
    ring.add(0, 'pred|a');
    ring.add(1000, 'pred|b');
    ring.add(1000, 'fb|a');
    const w = ring.window({ stepMs: 2000 });
    expect(w.histogram('h')).toEqual([[0, 2, 1]]);
    expect(w.names('counter', 'pred|')).toEqual(['pred|a', 'pred|b']);
  });
});

describe('label delay buckets', () => {
  it('finds the bucket and interpolates quantiles as histogram_quantile does', () => {
    expect(bucketOf(0.1)).toBe(0);
    expect(bucketOf(0.25)).toBe(0);
    expect(bucketOf(0.3)).toBe(1);
    expect(bucketOf(1e9)).toBe(LABEL_DELAY_BUCKETS.length);
    const counts = new Array<number>(BUCKET_COUNT).fill(0);
    counts[bucketOf(4)] = 10; // (3, 5]
    expect(quantile(counts, 0.5)).toBeCloseTo(4, 10);
    expect(quantile(counts, 0.9)).toBeCloseTo(4.8, 10);
    expect(quantile(new Array<number>(BUCKET_COUNT).fill(0), 0.5)).toBeNull();
  });
});

describe('LiveAccuracy', () => {
  it('counts the CONFIRMED share per category and version; a revision replaces the earlier label source; DEFAULT says nothing', () => {
    const acc = new LiveAccuracy();
    acc.add({ requestId: 'r1', category: 'c', version: '1', labelSource: 'CONFIRMED' });
    acc.add({ requestId: 'r2', category: 'c', version: '1', labelSource: 'CONFIRMED' });
    acc.add({ requestId: 'r3', category: 'c', version: '1', labelSource: 'DEFAULT' });
    acc.add({ requestId: 'r4', category: 'c', version: '2', labelSource: 'CORRECTED' });
    expect(acc.get('c', '1')).toEqual({ category: 'c', version: '1', confirmed: 2, corrected: 0, accuracy: 1 });
    // An audit corrects r1: it moves from CONFIRMED to CORRECTED.
    const changed = acc.add({ requestId: 'r1', category: 'c', version: '1', labelSource: 'CORRECTED' });
    expect(changed).toEqual({ category: 'c', version: '1', confirmed: 1, corrected: 1, accuracy: 0.5 });
    expect(acc.get('c', '2')?.accuracy).toBe(0);
  });

  it('forgets the oldest requests beyond its bound (a revision of a forgotten one counts as new)', () => {
    const acc = new LiveAccuracy(2);
    acc.add({ requestId: 'a', category: 'c', version: '1', labelSource: 'CONFIRMED' });
    acc.add({ requestId: 'b', category: 'c', version: '1', labelSource: 'CONFIRMED' });
    acc.add({ requestId: 'c', category: 'c', version: '1', labelSource: 'CONFIRMED' });
    acc.add({ requestId: 'a', category: 'c', version: '1', labelSource: 'CORRECTED' });
    expect(acc.get('c', '1')).toMatchObject({ confirmed: 3, corrected: 1 });
    acc.add({ requestId: 'c', category: 'c', version: '1', labelSource: 'CORRECTED' });
    expect(acc.get('c', '1')).toMatchObject({ confirmed: 2, corrected: 2 });
  });
});
