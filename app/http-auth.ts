import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../engine/errors.js';

/**
 * Token scopes. A route declares the one it needs in its fastify config (`config: { auth: 'infer' }`);
 * `public` needs none; a route that declares nothing needs `admin`. An `admin` token passes every scope.
 */
export const TOKEN_SCOPES = ['infer', 'feedback', 'topics', 'admin'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];
export type RouteAuth = TokenScope | 'public' | (string & {});

const tokensFileSchema = z
  .object(Object.fromEntries(TOKEN_SCOPES.map((s) => [s, z.array(z.string().min(16, 'tokens must have at least 16 characters')).optional()])) as Record<TokenScope, z.ZodOptional<z.ZodArray<z.ZodString>>>)
  .strict();

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Bearer tokens by scope, compared in constant time (SHA-256 of both sides, every token of the scope checked). */
export class BearerTokens {
  private readonly byScope = new Map<string, Buffer[]>();

  constructor(tokens: Partial<Record<TokenScope, readonly string[]>>) {
    for (const [scope, list] of Object.entries(tokens)) this.byScope.set(scope, (list ?? []).map(digest));
  }

  static fromFile(path: string): BearerTokens {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    } catch (err) {
      throw new ConfigError(`http.tokensFile ${path}: cannot read it as JSON (${err instanceof Error ? err.message : String(err)})`, { cause: err });
    }
    const result = tokensFileSchema.safeParse(parsed);
    if (!result.success) throw new ConfigError(`http.tokensFile ${path}: ${result.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ')} (docs/gateway.md)`);
    const tokens = new BearerTokens(result.data);
    if (tokens.count() === 0) throw new ConfigError(`http.tokensFile ${path} holds no token`);
    return tokens;
  }

  count(): number {
    return [...this.byScope.values()].reduce((n, l) => n + l.length, 0);
  }

  /** Whether `token` is one of `scope`'s tokens or an admin token. */
  allows(scope: string, token: string): boolean {
    const given = digest(token);
    let ok = false;
    for (const s of scope === 'admin' ? ['admin'] : [scope, 'admin']) {
      for (const known of this.byScope.get(s) ?? []) ok = timingSafeEqual(known, given) || ok;
    }
    return ok;
  }

  /** A token the CLI can use for the topic API (a `topics` token, else an `admin` one); undefined when none. */
  static cliToken(path: string): string | undefined {
    const parsed = tokensFileSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')) as unknown);
    return parsed.success ? (parsed.data.topics?.[0] ?? parsed.data.admin?.[0]) : undefined;
  }
}

/** The token of an `Authorization: Bearer <token>` header. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : undefined;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::ffff:127.0.0.1';
}
