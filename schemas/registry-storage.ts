import type { RocksDatabase } from '../engine/state/rocks.js';
import { prefixEnd } from '../engine/state/rocks.js';
import type { RegistryEntry, RegistryStorage } from './registry.js';
import { KEY_SCHEMA } from '../engine/embedded/log-codec.js';

/** Keeps the embedded schema registry in the embedded log's database. */
export function rocksRegistryStorage(db: RocksDatabase): RegistryStorage {
  const prefix = Buffer.from([KEY_SCHEMA]);
  return {
    load: () => db.range(prefix, prefixEnd(prefix)).map(([, v]) => JSON.parse(v.toString('utf8')) as RegistryEntry),
    save: (entry) => {
      const key = Buffer.concat([prefix, Buffer.from(`${String(entry.id).padStart(10, '0')}\u0000${entry.subject}`, 'utf8')]);
      db.write([{ type: 'put', key, value: Buffer.from(JSON.stringify(entry)) }]);
    },
  };
}
