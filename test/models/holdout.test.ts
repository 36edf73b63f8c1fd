import { describe, expect, it } from 'vitest';
import { holdoutPosition, inHoldout } from '../../models/holdout.js';

describe('inHoldout', () => {
  it('holds out about the requested fraction of ids', () => {
    const ids = Array.from({ length: 20000 }, (_, i) => `req-${i}`);
    for (const fraction of [0.05, 0.1, 0.5]) {
      const held = ids.filter((id) => inHoldout(id, fraction)).length / ids.length;
      expect(Math.abs(held - fraction)).toBeLessThan(0.01);
    }
  });

  it('is deterministic and nested: an id held out at 10% is held out at 20%', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => `order/${i * 7919}`);
    const at10 = ids.filter((id) => inHoldout(id, 0.1));
    expect(ids.filter((id) => inHoldout(id, 0.1))).toEqual(at10);
    expect(at10.every((id) => inHoldout(id, 0.2))).toBe(true);
  });

  it('reads the first 4 bytes of sha256 as a uint32', () => {
    // sha256("abc") = ba7816bf...
    expect(holdoutPosition('abc')).toBe(0xba7816bf / 2 ** 32);
    expect(inHoldout('abc', 0.73)).toBe(true);
    expect(inHoldout('abc', 0.72)).toBe(false);
  });

  it('holds out nothing at 0 and everything at 1, and rejects fractions outside [0, 1]', () => {
    expect(inHoldout('x', 0)).toBe(false);
    expect(inHoldout('x', 1)).toBe(true);
    expect(() => inHoldout('x', 1.5)).toThrow(expect.objectContaining({ code: 'SL_CONFIG' }));
    expect(() => inHoldout('x', Number.NaN)).toThrow(expect.objectContaining({ code: 'SL_CONFIG' }));
  });
});
