/**
 * API-key authentication: `Authorization: Bearer <key>` (or, for Bull Board in a browser, the key
 * as the password of HTTP Basic auth, or the run console's session cookie with its CSRF token,
 * see console-session.ts). Keys are looked up by SHA-256 hash.
 */
import type { NextFunction, Request, Response } from 'express';
import { and, eq, isNull } from 'drizzle-orm';
import { ForbiddenError, UnauthorizedError } from '../../lib/index.js';
import { apiKeys, hashApiKey, type Db } from '../../db/index.js';
import type { ConsoleSessions } from './console-session.js';

/** The authenticated caller. */
export interface Principal {
  organizationId: string;
  /** Identity the key acts as, e.g. `service:baton-api-key`. */
  subject: string;
  scopes: string[];
  /** Approver roles (checkpoint `approvers: [{role}]`). */
  roles: string[];
  /** The API key's id (absent for a console session's principal built elsewhere). */
  apiKeyId?: string;
  /** The key's own run-start limit per minute (its own bucket; `0`: none); `null`: the organization's. */
  rateLimitRunsPerMinute: number | null;
}

/** Cache lifetime of a key lookup, in milliseconds (revocation takes effect within it). */
const CACHE_TTL_MS = 30_000;

export class ApiKeyAuthenticator {
  private readonly cache = new Map<string, { principal: Principal | null; expiresAtMs: number }>();

  /** @param sessions - console sessions: also accept the console's cookie (with its CSRF check). */
  constructor(
    private readonly db: Db,
    readonly sessions?: ConsoleSessions,
  ) {}

  /** Resolve a key to its principal, or `null` when unknown or revoked. */
  async resolve(key: string): Promise<Principal | null> {
    const hash = hashApiKey(key);
    const hit = this.cache.get(hash);
    if (hit && hit.expiresAtMs > Date.now()) return hit.principal;
    const [row] = await this.db
      .select()
      .from(apiKeys)
      .where(and(eq(apiKeys.keyHash, hash), isNull(apiKeys.revokedAt)));
    const principal = row
      ? { organizationId: row.organizationId, subject: row.subject, scopes: row.scopes, roles: row.roles, apiKeyId: row.id, rateLimitRunsPerMinute: row.rateLimitRunsPerMinute }
      : null;
    this.cache.set(hash, { principal, expiresAtMs: Date.now() + CACHE_TTL_MS });
    return principal;
  }
}

/** Extract a key from `Authorization: Bearer …` or `Authorization: Basic base64(user:key)`. */
export function credentialFrom(req: Request): string | undefined {
  const header = req.get('authorization');
  if (!header) return undefined;
  const [scheme, value] = header.split(/\s+/, 2);
  if (!value) return undefined;
  if (scheme?.toLowerCase() === 'bearer') return value;
  if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? decoded.slice(colon + 1) : undefined;
  }
  return undefined;
}

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
    /** The request body's exact bytes (for signature checks). */
    rawBody?: Buffer;
  }
}

/**
 * Middleware: require a valid key (and `scope`, when given).
 * @param options.optional - continue without a principal when no credential is sent.
 */
export function requireApiKey(auth: ApiKeyAuthenticator, scope?: string, options: { optional?: boolean } = {}) {
  return async (req: Request, _res: Response, next: NextFunction): Promise<void> => {
    const key = credentialFrom(req) ?? auth.sessions?.credential(req);
    if (!key) {
      if (options.optional) return next();
      throw new UnauthorizedError('missing API key: send "Authorization: Bearer <key>"');
    }
    const principal = await auth.resolve(key);
    if (!principal) throw new UnauthorizedError('invalid API key');
    if (scope && !principal.scopes.includes(scope) && !principal.scopes.includes('admin')) {
      throw new ForbiddenError(`this API key lacks the "${scope}" scope`);
    }
    req.principal = principal;
    next();
  };
}

/** The request's principal (after `requireApiKey`). */
export function principalOf(req: Request): Principal {
  if (!req.principal) throw new UnauthorizedError('missing API key');
  return req.principal;
}
