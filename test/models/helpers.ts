/** The fixed 70/30 split used by the tests and by models/sklearn/make_breast_cancer_model.py. */
export function fixedSplit<T>(rows: ReadonlyArray<T>): { train: T[]; test: T[] } {
  return {
    train: rows.filter((_, i) => i % 10 < 7),
    test: rows.filter((_, i) => i % 10 >= 7),
  };
}
