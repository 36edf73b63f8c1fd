/** The column layout of \`export samples\` (no dependencies: \`models train --from\` reads it back). */
export const FIXED_COLUMNS = ['requestId', 'category', 'label', 'labelSource', 'predictedLabel', 'modelVersion', 'origin', 'revision', 'requestTimestamp', 'feedbackTimestamp'] as const;
export const ATTRIBUTE_PREFIX = 'attributes.';
/** A feature whose name collides with a fixed column or the attribute prefix is written under this prefix. */
export const FEATURE_PREFIX = 'feature.';

/** True when a table has every fixed column of an export of samples. */
export function isSampleExport(columns: ReadonlySet<string>): boolean {
  return FIXED_COLUMNS.every((c) => columns.has(c));
}

/** The feature a column of an export holds, or undefined when the column is not a feature. */
export function exportedFeature(column: string): string | undefined {
  if ((FIXED_COLUMNS as readonly string[]).includes(column) || column.startsWith(ATTRIBUTE_PREFIX)) return undefined;
  return column.startsWith(FEATURE_PREFIX) ? column.slice(FEATURE_PREFIX.length) : column;
}
