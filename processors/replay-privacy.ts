import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { SampleloopConfig } from '../engine/config.js';
import { privacyPolicyFor } from '../engine/embedded/app.js';
import { ConfigError } from '../engine/errors.js';
import { GENERATED_KEY_FILE, resolvePrivacyKey, type PrivacyPolicy } from './privacy.js';

/**
 * The privacy settings a replay runs with. Tokens must equal the online engine's, so the key is the
 * deployment's: the key environment variable or `privacy.keyFile` when set, else the `privacy.key`
 * the engine generated in its data dir (`keyDataDir`: the embedded target, or `dataDir`). Only an
 * embedded target may get a key generated, exactly as the engine would on its first start.
 */
export function replayPrivacySettings(config: SampleloopConfig, keyDataDir: string, mayGenerate: boolean): SampleloopConfig['privacy'] {
  const privacy = config.privacy;
  if ((process.env[privacy.keyEnv]?.trim() ?? '') !== '' || (privacy.keyFile ?? '') !== '') return privacy;
  const generated = join(keyDataDir, GENERATED_KEY_FILE);
  if (!existsSync(generated) && mayGenerate && needsKey(config)) resolvePrivacyKey({ envVar: privacy.keyEnv, dataDir: keyDataDir, allowGenerate: true });
  return existsSync(generated) ? { ...privacy, keyFile: generated } : privacy;
}

/** The policy of `config`, or a ConfigError that says where a replay looks for the key. */
export function replayPrivacyPolicy(config: SampleloopConfig, keyDataDir: string): PrivacyPolicy {
  try {
    return privacyPolicyFor(config, false);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(
      `${err.message}\nA replay tokenizes with the online engine's key so replayed tokens equal online ones: point --data-dir at the engine's data dir ` +
        `(it holds ${GENERATED_KEY_FILE}; looked in ${keyDataDir}), or set ${config.privacy.keyEnv} or privacy.keyFile as the engine has them.`,
      { cause: err },
    );
  }
}

function needsKey(config: SampleloopConfig): boolean {
  const rules = [...config.privacy.alwaysSensitive, ...Object.values(config.categories).flatMap((c) => c.sensitive)];
  return rules.some((r) => r.action === 'tokenize');
}
