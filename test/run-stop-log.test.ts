/** `sampleloop run`: the last log line tells a clean stop from a stop after an error. */
import { expect, it } from 'vitest';
import { logStopped } from '../cli/run.js';
import { SchemaError } from '../engine/errors.js';
import type { Logger } from '../engine/logger.js';

function recorder(): { logger: Logger; lines: Array<[string, unknown[]]> } {
  const lines: Array<[string, unknown[]]> = [];
  const logger = { info: (...a: unknown[]) => lines.push(['info', a]), error: (...a: unknown[]) => lines.push(['error', a]) } as unknown as Logger;
  return { logger, lines };
}

it('logs "stopped cleanly" only without an error', () => {
  const clean = recorder();
  logStopped(clean.logger, undefined);
  expect(clean.lines).toEqual([['info', ['stopped cleanly']]]);

  const failed = recorder();
  logStopped(failed.logger, new SchemaError('cannot look up schema id 30'));
  expect(failed.lines).toHaveLength(1);
  expect(failed.lines[0]?.[0]).toBe('error');
  expect(JSON.stringify(failed.lines[0]?.[1])).toContain('cannot look up schema id 30');
  expect(JSON.stringify(failed.lines[0]?.[1])).not.toContain('stopped cleanly');
});
