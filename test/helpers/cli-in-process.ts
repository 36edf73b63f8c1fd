/** Runs `sampleloop` in this process through cli/main.ts, capturing stdout lines and stderr. */
import { vi } from 'vitest';
import { main } from '../../cli/main.js';

export interface CliRun {
  code: number;
  stdout: string[];
  stderr: string;
}

export async function runCli(...args: string[]): Promise<CliRun> {
  const stdout: string[] = [];
  let stderr = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(['node', 'sampleloop', ...args], (line) => stdout.push(line));
    return { code, stdout, stderr };
  } finally {
    spy.mockRestore();
  }
}
