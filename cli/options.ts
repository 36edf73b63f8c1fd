/**
 * Option helpers every command shares. This module and the commands' registration modules import
 * only commander and engine/errors: `sampleloop --help` and `--version` load no native module
 * (RocksDB, onnxruntime, librdkafka) and not the configuration's schema; each command's action
 * imports what it needs when it runs (docs/cli.md, "Start-up").
 */
import { CommanderError, type Command } from 'commander';

export function withCommon(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'JSON configuration file (docs/configuration.md); SAMPLELOOP__a__b=value environment variables override it')
    .option('-d, --data-dir <dir>', 'embedded mode: where the local log and state live (overrides dataDir)');
}

/** A non-negative integer flag value; a usage error (exit 2) otherwise. */
export function intOption(value: string, name: string): number {
  const n = Number.parseInt(value, 10);
  if (!Number.isFinite(n) || n < 0 || String(n) !== value.trim()) throw new CommanderError(2, 'sampleloop.usage', `${name} must be a non-negative integer, got "${value}"`);
  return n;
}

/** `a, b,c` → ['a', 'b', 'c']. */
export function listOption(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
