/**
 * The model ledger: `ModelVersion` records on the `models` topic (key = category), hash-chained per
 * category so that any change to a stored version, or a version spliced into the history, is detected
 * (docs/model-cluster.md). Its parts, one job each:
 *
 *   ledger/record.ts    building a version: chain fields, canonical encoding, hashes, the ONNX bytes
 *   ledger/verify.ts    the verification rules for one version against its category's head
 *   ledger/codec.ts     decoding models-topic records (Avro or JSON), the JSON form
 *   ledger/book.ts      following the ledger record by record; reading and verifying all of it
 *   ledger/publish.ts   appending versions: publishVersion, ledgerClient
 *   ledger/signing.ts   Ed25519 keys, signing a version over its record hash
 *   ledger/trust.ts     the trust policy: which keys may publish which category
 *   ledger/checkpoint.ts signed checkpoints of the heads, and proving a ledger extends one
 *   ledger/keys-config.ts the signer and trust policy the configuration gives
 */
export * from './ledger/record.js';
export * from './ledger/verify.js';
export * from './ledger/codec.js';
export * from './ledger/book.js';
export * from './ledger/publish.js';
export * from './ledger/signing.js';
export * from './ledger/trust.js';
export * from './ledger/checkpoint.js';
export * from './ledger/keys-config.js';
