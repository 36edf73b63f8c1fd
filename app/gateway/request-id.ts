import { randomBytes } from 'node:crypto';

/**
 * Request IDs are UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then a 12-bit counter (method 1
 * of §6.2: reseeded at random every millisecond, incremented within one), then 62 random bits. They
 * sort by creation time as text, fit every system that takes a UUID, and are unique without
 * coordination between gateway instances. Within one process they are strictly increasing.
 */
export class RequestIdGenerator {
  private lastMs = -1;
  private counter = 0;

  constructor(private readonly now: () => number = Date.now) {}

  next(): string {
    let ms = Math.max(this.now(), this.lastMs);
    if (ms === this.lastMs) {
      this.counter++;
      // 4096 IDs in one millisecond: borrow the next millisecond rather than repeat or go backwards.
      if (this.counter > 0xfff) {
        ms++;
        this.counter = randomBytes(2).readUInt16BE(0) & 0x7ff;
      }
    } else this.counter = randomBytes(2).readUInt16BE(0) & 0x7ff; // leaves half the range for increments
    this.lastMs = ms;
    const bytes = randomBytes(16);
    bytes.writeUIntBE(ms, 0, 6);
    bytes[6] = 0x70 | (this.counter >> 8);
    bytes[7] = this.counter & 0xff;
    bytes[8] = 0x80 | ((bytes[8] as number) & 0x3f);
    const hex = bytes.toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
}

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export function isUuidV7(id: string): boolean {
  return UUID_V7.test(id);
}

/** Milliseconds since the Unix epoch encoded in a UUIDv7. */
export function uuidV7Time(id: string): number {
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
