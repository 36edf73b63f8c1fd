import type { FileFeed } from './feed.js';
import type { ReplayItem } from './records.js';

/** A file holds a record older than one already passed on: its disorder exceeds the reorder buffer. */
export class DisorderError extends Error {
  constructor(
    readonly file: number,
    readonly line: number,
  ) {
    super(`line ${line} of input file #${file} is older than a record already merged: the file is not in event-time order within the reorder buffer`);
  }
}

/** Binary min-heap. */
export class MinHeap<T> {
  private readonly items: T[] = [];

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(a[i] as T, a[parent] as T)) break;
      [a[i], a[parent]] = [a[parent] as T, a[i] as T];
      i = parent;
    }
  }

  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.before(a[l] as T, a[m] as T)) m = l;
        if (r < a.length && this.before(a[r] as T, a[m] as T)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m] as T, a[i] as T];
        i = m;
      }
    }
    return top;
  }
}

/**
 * The replay order: event time, then predictions before feedback, then archive order (file index —
 * gateway files come first — and line). It is the order of the on-disk sort too, so both paths feed
 * the topology the same sequence.
 */
export function itemBefore(a: ReplayItem, b: ReplayItem): boolean {
  if (a.timestamp !== b.timestamp) return a.timestamp < b.timestamp;
  if (a.file !== b.file) return a.file < b.file;
  return a.line < b.line;
}

/** Every item of every file, file after file, each in file order (what the on-disk sort stages). */
export async function* inFileOrder(feeds: readonly FileFeed[], batchSize: number): AsyncGenerator<ReplayItem[]> {
  let batch: ReplayItem[] = [];
  for (const feed of feeds) {
    while (!feed.exhausted) {
      if (feed.available === 0) await feed.pull();
      while (feed.available > 0) {
        batch.push(feed.take());
        if (batch.length >= batchSize) {
          yield batch;
          batch = [];
        }
      }
    }
  }
  if (batch.length > 0) yield batch;
}

interface MergeInput {
  feed: FileFeed;
  buffer: MinHeap<ReplayItem>;
  /** Event time of the last item passed on from this file. */
  emitted: number;
}

/**
 * A k-way merge of the files by replay order, each file through a reorder buffer of `window` items:
 * a file may be out of order by up to `window` records. A file whose next record is older than one
 * already passed on throws DisorderError — the items yielded before it were in exact replay order,
 * but the run cannot continue in order (replay then falls back to the on-disk sort).
 */
export async function* mergedByTime(feeds: readonly FileFeed[], window: number, batchSize: number): AsyncGenerator<ReplayItem[]> {
  const inputs: MergeInput[] = feeds.map((feed) => ({ feed, buffer: new MinHeap(itemBefore), emitted: Number.NEGATIVE_INFINITY }));
  const heads = new MinHeap<MergeInput>((a, b) => itemBefore(a.buffer.peek() as ReplayItem, b.buffer.peek() as ReplayItem));
  const fill = async (input: MergeInput): Promise<void> => {
    while (input.buffer.size < window) {
      if (input.feed.available === 0) {
        if (input.feed.exhausted) return;
        await input.feed.pull();
        continue;
      }
      const item = input.feed.take();
      if (item.timestamp < input.emitted) throw new DisorderError(item.file, item.line);
      input.buffer.push(item);
    }
  };
  for (const input of inputs) {
    await fill(input);
    if (input.buffer.size > 0) heads.push(input);
  }
  let batch: ReplayItem[] = [];
  for (;;) {
    const input = heads.pop();
    if (input === undefined) break;
    const item = input.buffer.pop() as ReplayItem;
    input.emitted = item.timestamp;
    batch.push(item);
    if (batch.length >= batchSize) {
      yield batch;
      batch = [];
    }
    // Synchronous while the file's queue holds items: a promise only when a chunk must be read.
    if (input.feed.available > 0 || !input.feed.exhausted) {
      if (input.feed.available > 0 && input.buffer.size === window - 1) {
        const next = input.feed.take();
        if (next.timestamp < input.emitted) throw new DisorderError(next.file, next.line);
        input.buffer.push(next);
      } else {
        await fill(input);
      }
    }
    if (input.buffer.size > 0) heads.push(input);
  }
  if (batch.length > 0) yield batch;
}
