import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../models/datasets/index.js';

function countLabels(rows: ReadonlyArray<{ label: string }>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const row of rows) counts[row.label] = (counts[row.label] ?? 0) + 1;
  return counts;
}

describe('loadDataset', () => {
  it('reads digits: 1797 rows of 64 pixels 0..16, ten classes', () => {
    const ds = loadDataset('digits');
    expect(ds.name).toBe('digits');
    expect(ds.rows).toHaveLength(1797);
    expect(ds.featureNames).toHaveLength(64);
    expect(ds.featureNames[0]).toBe('px0');
    expect(ds.featureNames[63]).toBe('px63');
    expect(ds.classes).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    for (const row of ds.rows) {
      expect(row.features).toHaveLength(64);
      expect(row.features.every((v) => Number.isInteger(v) && v >= 0 && v <= 16)).toBe(true);
    }
    const counts = countLabels(ds.rows);
    expect(Object.keys(counts).sort()).toEqual(ds.classes);
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1797);
    // First row of the UCI test set is a 0.
    expect(ds.rows[0]?.label).toBe('0');
    expect(ds.rows[0]?.features.slice(0, 8)).toEqual([0, 0, 5, 13, 9, 1, 0, 0]);
  });

  it('reads breast-cancer: 569 rows, 30 named features, 212 malignant / 357 benign', () => {
    const ds = loadDataset('breast-cancer');
    expect(ds.rows).toHaveLength(569);
    expect(ds.featureNames).toHaveLength(30);
    expect(ds.featureNames[0]).toBe('mean_radius');
    expect(ds.featureNames[29]).toBe('worst_fractal_dimension');
    expect(ds.classes).toEqual(['malignant', 'benign']);
    expect(countLabels(ds.rows)).toEqual({ malignant: 212, benign: 357 });
    expect(ds.rows[0]?.features[0]).toBe(17.99);
    expect(ds.rows.every((r) => r.features.length === 30 && r.features.every(Number.isFinite))).toBe(true);
  });

  it('rejects an unknown name with SL_MODEL', () => {
    expect(() => loadDataset('iris' as 'digits')).toThrow(expect.objectContaining({ code: 'SL_MODEL' }));
  });
});
