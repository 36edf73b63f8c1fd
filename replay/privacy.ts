import { chmodSync, constants, copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SampleloopConfig } from '../config/config.js';
import { privacyKeyConfigured, privacyKeyRequired, privacyPolicyFor } from '../app/embedded.js';
import { ConfigError } from '../engine/errors.js';
import { GENERATED_KEY_FILE, readPrivacyKeyFile, resolvePrivacyKey, type PrivacyPolicy } from '../processors/privacy.js';

/**
 * The privacy settings a replay runs with. Tokens must equal the online engine's, so the key is the
 * deployment's: the key environment variable or `privacy.keyFile` when set, else the first
 * `privacy.key` found in `keyDirs` (the data dirs whose engine generated one, in order of
 * preference). With `generateIn`, a key is generated there when none is found, exactly as the
 * engine does on its first start.
 */
export function replayPrivacySettings(config: SampleloopConfig, keyDirs: readonly string[], generateIn?: string): SampleloopConfig['privacy'] {
  const privacy = config.privacy;
  if (privacyKeyConfigured(config)) return privacy;
  const found = keyDirs.map((dir) => join(dir, GENERATED_KEY_FILE)).find((file) => existsSync(file));
  if (found !== undefined) return { ...privacy, keyFile: generateIn === undefined ? found : adoptKey(found, generateIn) };
  if (generateIn === undefined || !privacyKeyRequired(config)) return privacy;
  resolvePrivacyKey({ envVar: privacy.keyEnv, dataDir: generateIn, allowGenerate: true });
  return { ...privacy, keyFile: join(generateIn, GENERATED_KEY_FILE) };
}

/**
 * The configured key (environment variable or privacy.keyFile) wins over a data dir's generated
 * `privacy.key`: when both exist and differ, replayed tokens would not match the samples the online
 * engine made in that data dir. Returns a warning naming both, or undefined.
 */
export function replayKeyMismatch(config: SampleloopConfig, keyDirs: readonly string[]): string | undefined {
  if (!privacyKeyConfigured(config)) return undefined;
  const envSet = (process.env[config.privacy.keyEnv]?.trim() ?? '') !== '';
  const configured = resolvePrivacyKey({ envVar: config.privacy.keyEnv, ...(config.privacy.keyFile ? { keyFile: config.privacy.keyFile } : {}), allowGenerate: false }).key;
  const where = envSet ? `the environment variable ${config.privacy.keyEnv}` : `privacy.keyFile ${config.privacy.keyFile ?? ''}`;
  for (const dir of keyDirs) {
    const file = join(dir, GENERATED_KEY_FILE);
    if (!existsSync(file) || file === config.privacy.keyFile) continue;
    if (!readPrivacyKeyFile(file).equals(configured)) {
      return (
        `privacy key: replaying with the key from ${where}, which differs from ${file} (the key the engine generated for that data dir): ` +
        `replayed tokens will not match that data dir's online samples. Unset ${config.privacy.keyEnv} (and privacy.keyFile) to replay with ${file}, or ignore this if the online engine runs with ${where} too.`
      );
    }
  }
  return undefined;
}

/** The policy of `config`, or a ConfigError that says where a replay looks for the key. */
export function replayPrivacyPolicy(config: SampleloopConfig, keyDirs: readonly string[]): PrivacyPolicy {
  try {
    return privacyPolicyFor(config, false);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(
      `${err.message}\nA replay tokenizes with the online engine's key so replayed tokens equal online ones: point --data-dir at the engine's data dir ` +
        `(it holds ${GENERATED_KEY_FILE}; looked in ${keyDirs.join(', ')}), or set ${config.privacy.keyEnv} or privacy.keyFile as the engine has them.`,
      { cause: err },
    );
  }
}

/**
 * The target data dir gets the key the replay tokenizes with (unless it has its own), so an engine
 * started there later tokenizes online records with the same key instead of generating another.
 */
function adoptKey(keyFile: string, targetDir: string): string {
  const target = join(targetDir, GENERATED_KEY_FILE);
  if (existsSync(target)) return target;
  mkdirSync(targetDir, { recursive: true });
  copyFileSync(keyFile, target, constants.COPYFILE_EXCL);
  chmodSync(target, 0o600);
  return target;
}
