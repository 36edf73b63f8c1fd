/** The trigger's per-category state and its stores. */
import type { StoreSpec } from '../engine/topology.js';
import type { Codec } from '../engine/state/kv-store.js';
import type { DriftProfile } from './feature-drift.js';

/** Per-category state of the trigger. Times are wall-clock ms; -1 means "not yet". */
export interface CategoryState {
  servingVersion: string;
  servingSince: number;
  /** True once the version came from the models topic; from then on samples no longer switch it. */
  servingFromLedger: boolean;
  ledgerSequence: number;
  /** Versions learned from samples (bounded), so a late sample of an old version does not switch back. */
  knownVersions: string[];
  /** Distinct request IDs first seen since the serving version. */
  newSamples: number;
  /** Distinct request IDs ever seen (= the snapshot's sampleCount). */
  totalSamples: number;
  /** Accepted sample events (new request IDs and newer revisions): a trigger needs new data since the last one. */
  changes: number;
  changesAtLastFire: number;
  /** The window is the entries with sequence numbers in [windowStart, windowEnd). */
  windowStart: number;
  windowEnd: number;
  windowConfirmed: number;
  windowCorrected: number;
  pending: boolean;
  lastFiredAt: number;
  /** Triggers fired for the serving version (the n of the trigger id). */
  firedForVersion: number;
  /** The drift reference sample holds the requests whose hash position is below this ... */
  referenceThreshold: number;
  /** ... this many of them. */
  referenceSize: number;
}

export interface SeenEntry {
  revision: number;
  /** Window sequence number of this request, -1 when it never entered the window. */
  windowSeq: number;
}

export interface WindowEntry {
  requestId: string;
  labelSource: 'CONFIRMED' | 'CORRECTED';
}

function jsonCodec<V>(): Codec<V> {
  return { encode: (v) => Buffer.from(JSON.stringify(v), 'utf8'), decode: (b) => JSON.parse(b.toString('utf8')) as V };
}

export interface TriggerStoreNames {
  categories: string;
  seen: string;
  window: string;
  positions: string;
  /** Drift reference sample: `<category>/<hash position, 8 hex digits>/<requestId>` → the request's features. */
  reference: string;
  /** Drift profile of the serving version per category. */
  profiles: string;
}

export function triggerStoreNames(name: string): TriggerStoreNames {
  return {
    categories: `${name}-categories`,
    seen: `${name}-seen`,
    window: `${name}-window`,
    positions: `${name}-positions`,
    reference: `${name}-drift-reference`,
    profiles: `${name}-drift-profiles`,
  };
}

export function triggerStores(name: string): StoreSpec[] {
  const names = triggerStoreNames(name);
  return [
    { name: names.categories, codec: jsonCodec<CategoryState>(), rangeScans: true },
    { name: names.seen, codec: jsonCodec<SeenEntry>() },
    { name: names.window, codec: jsonCodec<WindowEntry>(), readCacheEntries: 0 },
    { name: names.positions, codec: jsonCodec<number>() },
    { name: names.reference, codec: jsonCodec<Record<string, number>>(), rangeScans: true, readCacheEntries: 0 },
    { name: names.profiles, codec: jsonCodec<DriftProfile>() },
  ];
}

export const MAX_KNOWN_VERSIONS = 16;
/** Store keys must be ASCII for range scans; URI encoding keeps any category name ASCII and '/'-free. */
export const keyOf = (category: string): string => encodeURIComponent(category);
export const ALL_KEYS_END = '\u007f';

export function freshState(): CategoryState {
  return {
    servingVersion: '',
    servingSince: -1,
    servingFromLedger: false,
    ledgerSequence: -1,
    knownVersions: [],
    newSamples: 0,
    totalSamples: 0,
    changes: 0,
    changesAtLastFire: 0,
    windowStart: 0,
    windowEnd: 0,
    windowConfirmed: 0,
    windowCorrected: 0,
    pending: false,
    lastFiredAt: -1,
    firedForVersion: 0,
    referenceThreshold: 1,
    referenceSize: 0,
  };
}

