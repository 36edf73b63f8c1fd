import { describe, it, expect } from 'vitest';
import { startHarness } from './helpers/engine-harness.js';

describe('smoke', () => {
  it('runs', async () => {
    const h = await startHarness({ config: { join: { beforeMs: 10, afterMs: 100, graceMs: 50 } } });
    const p = { requestId: 'r1', category: 'intent', features: { f0: 1 }, attributes: { name: 'Ada', phone: '+44 7700 900123', country: 'GB' }, predictedLabel: 'billing', scores: { billing: 0.7, support: 0.3, x: 0 }, modelVersion: '1', requestTimestamp: 1000, timestamp: 1000 };
    h.send('prediction', p);
    h.send('feedback', { requestId: 'r1', timestamp: 1010, actualLabel: 'support' });
    h.send('prediction', p);
    h.send('feedback', { requestId: 'r2', timestamp: 1010 });
    h.send('prediction', { ...p, requestId: 'r3', timestamp: 1200 });
    h.send('feedback', { requestId: 'r4', timestamp: 900, correct: true });
    h.flush();
    for (const t of ['samples', 'unmatched', 'orphans', 'late', 'review', 'dead-letters']) console.log(t, JSON.stringify(await h.records(t), null, 1));
    await h.close();
  });
});
