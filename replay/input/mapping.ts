import { existsSync, readFileSync } from 'node:fs';
import { UsageError, errorMessage } from '../../engine/errors.js';
import type { LineFormat } from './files.js';

/** `gateway` files hold predictions (with their request's inputs), `business` files hold feedback. */
export type ArchiveSide = 'gateway' | 'business';

export const SIDE_SCHEMA = { gateway: 'Prediction', business: 'Feedback' } as const;

const SIDE_FIELDS: Record<ArchiveSide, readonly string[]> = {
  gateway: ['requestId', 'category', 'features', 'attributes', 'predictedLabel', 'scores', 'modelVersion', 'modelHash', 'requestTimestamp', 'timestamp'],
  business: ['requestId', 'timestamp', 'source', 'actualLabel', 'correct'],
};

/** Map-valued fields, with the type of their values; `<field>.<name>` columns fill them entry by entry. */
const MAP_FIELDS: Record<ArchiveSide, ReadonlyMap<string, 'number' | 'string'>> = {
  gateway: new Map([
    ['features', 'number'],
    ['scores', 'number'],
    ['attributes', 'string'],
  ]),
  business: new Map(),
};

const TIMESTAMP_FIELDS = new Set(['timestamp', 'requestTimestamp']);

export interface MappingEntry {
  /** Our field (`requestId`) or one entry of a map field (`features.amount`). */
  target: string;
  /** The archive's column (CSV) or key (JSON; a dotted path reaches into nested objects when no key has that exact name). */
  source: string;
}

export type ColumnMapping = Record<ArchiveSide, MappingEntry[]>;

export function emptyMapping(): ColumnMapping {
  return { gateway: [], business: [] };
}

/**
 * Reads `--map` values: each is a JSON mapping file (`{"gateway": {"requestId": "req_id"}, ...}`, a path
 * ending in `.json`) or inline `side.target=source` pairs separated by commas.
 */
export function parseMapping(specs: readonly string[]): ColumnMapping {
  const mapping = emptyMapping();
  for (const spec of specs) {
    const trimmed = spec.trim();
    if (trimmed === '') continue;
    if (trimmed.endsWith('.json') && !trimmed.includes('=')) addJsonMapping(mapping, trimmed);
    else for (const pair of trimmed.split(',')) addPair(mapping, pair.trim(), `--map "${spec}"`);
  }
  return mapping;
}

function addJsonMapping(mapping: ColumnMapping, file: string): void {
  if (!existsSync(file)) throw new UsageError(`mapping file ${file} does not exist`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`mapping file ${file} is not valid JSON: ${errorMessage(err)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`mapping file ${file} must hold an object like {"gateway": {"requestId": "req_id"}, "business": {"actualLabel": "verified_value"}}`);
  }
  for (const [side, entries] of Object.entries(parsed)) {
    if (typeof entries !== 'object' || entries === null || Array.isArray(entries)) {
      throw new UsageError(`mapping file ${file}: "${side}" must be an object of our field → archive column`);
    }
    for (const [target, source] of Object.entries(entries as Record<string, unknown>)) {
      if (typeof source !== 'string') throw new UsageError(`mapping file ${file}: ${side}.${target} must name a column (a string)`);
      addEntry(mapping, side, target, source, `mapping file ${file}`);
    }
  }
}

function addPair(mapping: ColumnMapping, pair: string, where: string): void {
  if (pair === '') return;
  const eq = pair.indexOf('=');
  const dot = pair.indexOf('.');
  if (eq < 0 || dot < 0 || dot > eq) {
    throw new UsageError(`${where}: "${pair}" is not side.field=column (e.g. gateway.requestId=req_id or business.actualLabel=verified_value)`);
  }
  addEntry(mapping, pair.slice(0, dot), pair.slice(dot + 1, eq).trim(), pair.slice(eq + 1).trim(), where);
}

function addEntry(mapping: ColumnMapping, side: string, target: string, source: string, where: string): void {
  if (side !== 'gateway' && side !== 'business') throw new UsageError(`${where}: the side must be "gateway" or "business", got "${side}"`);
  if (source === '') throw new UsageError(`${where}: ${side}.${target} maps to an empty column name`);
  const dot = target.indexOf('.');
  const field = dot < 0 ? target : target.slice(0, dot);
  const valid = dot < 0 ? SIDE_FIELDS[side].includes(field) : MAP_FIELDS[side].has(field) && target.length > dot + 1;
  if (!valid) {
    const maps = [...MAP_FIELDS[side].keys()].map((m) => `${m}.<name>`);
    throw new UsageError(`${where}: "${target}" is not a ${SIDE_SCHEMA[side]} field; use one of ${[...SIDE_FIELDS[side], ...maps].join(', ')}`);
  }
  mapping[side].push({ target, source });
}

/**
 * Turns one archive record into a candidate Prediction / Feedback (validated afterwards by the
 * engine's own `validateRecord`): mapped columns renamed, `features.x`-style columns folded into
 * their map, map fields given as JSON text parsed, timestamps given as ISO-8601 converted, and CSV
 * cells (always text) converted to the schema's types. Empty CSV cells count as absent.
 */
export class RecordNormalizer {
  private readonly fields: ReadonlySet<string>;
  private readonly maps: ReadonlyMap<string, 'number' | 'string'>;
  private readonly sources: ReadonlySet<string>;

  constructor(
    private readonly side: ArchiveSide,
    private readonly mapping: readonly MappingEntry[],
  ) {
    this.fields = new Set(SIDE_FIELDS[side]);
    this.maps = MAP_FIELDS[side];
    this.sources = new Set(mapping.map((m) => m.source));
  }

  normalize(raw: Record<string, unknown>, format: LineFormat): Record<string, unknown> {
    const csv = format === 'csv';
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(raw)) {
      if (this.sources.has(key)) continue;
      this.put(out, key, raw[key], csv);
    }
    for (const { target, source } of this.mapping) this.put(out, target, lookup(raw, source), csv);
    for (const [field, kind] of this.maps) {
      const value = out[field];
      if (typeof value === 'string' && value.trimStart().startsWith('{')) out[field] = parseJsonMap(value, kind, csv);
    }
    for (const field of TIMESTAMP_FIELDS) {
      const value = out[field];
      if (typeof value === 'string') out[field] = parseEventTime(value) ?? value;
    }
    if (csv && this.side === 'business' && typeof out.correct === 'string') out.correct = parseBoolean(out.correct) ?? out.correct;
    return out;
  }

  private put(out: Record<string, unknown>, key: string, value: unknown, csv: boolean): void {
    if (value === undefined || (csv && value === '')) return;
    const dot = key.indexOf('.');
    if (dot > 0) {
      const field = key.slice(0, dot);
      const kind = this.maps.get(field);
      if (kind === undefined) return;
      let map = out[field];
      if (typeof map !== 'object' || map === null || Array.isArray(map)) {
        map = {};
        out[field] = map;
      }
      const name = key.slice(dot + 1);
      if (name !== '__proto__') (map as Record<string, unknown>)[name] = csv && kind === 'number' && typeof value === 'string' ? parseNumber(value) : value;
      return;
    }
    if (this.fields.has(key)) out[key] = value;
  }
}

/** An exact key first; otherwise a dotted path into nested objects (`meta.requestId`). */
function lookup(raw: Record<string, unknown>, source: string): unknown {
  if (Object.hasOwn(raw, source)) return raw[source];
  if (!source.includes('.')) return undefined;
  let node: unknown = raw;
  for (const part of source.split('.')) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function parseJsonMap(text: string, kind: 'number' | 'string', csv: boolean): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return text;
  }
  if (csv && kind === 'number' && typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
    const map = parsed as Record<string, unknown>;
    for (const key of Object.keys(map)) {
      const value = map[key];
      if (typeof value === 'string') map[key] = parseNumber(value);
    }
  }
  return parsed;
}

const NUMBER = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;
const NON_FINITE: Record<string, number> = { nan: Number.NaN, infinity: Number.POSITIVE_INFINITY, '+infinity': Number.POSITIVE_INFINITY, '-infinity': Number.NEGATIVE_INFINITY };

/** A decimal number; NaN / Infinity spelled out become those values (so validation names them); anything else stays text. */
export function parseNumber(text: string): number | string {
  if (NUMBER.test(text)) return Number(text);
  const special = NON_FINITE[text.trim().toLowerCase()];
  return special ?? text;
}

const BOOLEANS: Record<string, boolean> = { true: true, false: false, '1': true, '0': false, yes: true, no: false, t: true, f: false, y: true, n: false };

export function parseBoolean(text: string): boolean | undefined {
  return BOOLEANS[text.trim().toLowerCase()];
}

const ISO_8601 = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?))?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * Event time from text: epoch milliseconds (digits only) or ISO-8601 (`2026-01-05`, `2026-01-05T09:30:00.250Z`,
 * `2026-01-05 09:30:00+01:00`); without a zone the time is UTC. Undefined when the text is neither.
 */
export function parseEventTime(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) {
    const ms = Number(trimmed);
    return Number.isSafeInteger(ms) ? ms : undefined;
  }
  const m = ISO_8601.exec(trimmed);
  if (!m) return undefined;
  const [, date, time, zone] = m;
  let offset = zone === undefined || zone.toUpperCase() === 'Z' ? 'Z' : zone;
  if (/^[+-]\d{2}$/.test(offset)) offset += ':00';
  else if (/^[+-]\d{4}$/.test(offset)) offset = `${offset.slice(0, 3)}:${offset.slice(3)}`;
  const ms = Date.parse(`${date}T${(time ?? '00:00:00').replace(',', '.')}${offset}`);
  return Number.isFinite(ms) ? ms : undefined;
}
