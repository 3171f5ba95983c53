/**
 * API-key authentication: `Authorization: Bearer <key>` (or, for Bull Board in a browser, the key
 * as the password of HTTP Basic auth, or the run console's session cookie with its CSRF token,
 * see console-session.ts). Organization keys are looked up by SHA-256 hash and cached for
 * {@link KEY_CACHE_TTL_MS}; a key change NOTIFYs every API node at commit (migration 0010), which
 * forgets it at once (`RunEventHub.subscribeApiKeyChanges`). The platform-admin key
 * (`BATON_ADMIN_API_KEY`) is no organization's key: it opens only the platform routes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { ForbiddenError, UnauthorizedError, type AppError, type Logger } from '../../lib/index.js';
import { hashApiKey, type Db } from '../../db/index.js';
import { findActiveApiKey, touchApiKey } from '../store/index.js';
import type { ConsoleSessions } from './console-session.js';

/** The authenticated caller. */
export interface Principal {
  /** The API key's id. */
  keyId: string;
  organizationId: string;
  /** Identity the key acts as, e.g. `service:baton-api-key`. */
  subject: string;
  scopes: string[];
  /** Approver roles (checkpoint `approvers: [{role}]`). */
  roles: string[];
  /** The key's own run-start limit per minute (its own bucket; `0`: none); `null`: the organization's. */
  rateLimitRunsPerMinute: number | null;
}

/**
 * Default cache lifetime of a key lookup, in milliseconds. Revocation reaches every node through
 * a Postgres NOTIFY within milliseconds; this bound holds even when a notification is lost (the
 * listening connection reconnecting), so a revoked key is refused everywhere within a second.
 */
export const KEY_CACHE_TTL_MS = 1000;

/** `api_keys.last_used_at` is written at most this often per key, in milliseconds. */
const TOUCH_INTERVAL_MS = 60_000;

/** Options of {@link ApiKeyAuthenticator}. */
export interface AuthenticatorOptions {
  /** The platform-admin key (`BATON_ADMIN_API_KEY`); undefined: the platform routes are closed. */
  platformKey?: string | undefined;
  /** Cache lifetime of a lookup, in milliseconds (default {@link KEY_CACHE_TTL_MS}). */
  cacheTtlMs?: number;
  /** Where a failed `last_used_at` write is logged. */
  logger?: Logger;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class ApiKeyAuthenticator {
  private readonly cache = new Map<string, { principal: Principal | null; expiresAtMs: number }>();
  /** Bumped by every {@link forget}: a lookup that overlapped one is not cached. */
  private epoch = 0;
  private readonly touching = new Set<string>();
  private readonly platformKeyHash: Buffer | undefined;
  private readonly cacheTtlMs: number;

  /** @param sessions - console sessions: also accept the console's cookie (with its CSRF check). */
  constructor(
    private readonly db: Db,
    readonly sessions?: ConsoleSessions,
    private readonly options: AuthenticatorOptions = {},
  ) {
    this.platformKeyHash = options.platformKey ? sha256(options.platformKey) : undefined;
    this.cacheTtlMs = options.cacheTtlMs ?? KEY_CACHE_TTL_MS;
  }

  /** Whether a platform-admin key is configured. */
  get platformEnabled(): boolean {
    return this.platformKeyHash !== undefined;
  }

  /** Whether `key` is the platform-admin key (compared in constant time). */
  isPlatformKey(key: string): boolean {
    return this.platformKeyHash !== undefined && timingSafeEqual(sha256(key), this.platformKeyHash);
  }

  /**
   * Drop a cached lookup.
   * @param keyHash - the key's SHA-256 hex digest; undefined: every cached lookup.
   */
  forget(keyHash?: string): void {
    this.epoch += 1;
    if (keyHash === undefined) this.cache.clear();
    else this.cache.delete(keyHash);
  }

  /** Resolve a key to its principal, or `null` when unknown or revoked. */
  async resolve(key: string): Promise<Principal | null> {
    const hash = hashApiKey(key);
    const now = Date.now();
    const hit = this.cache.get(hash);
    if (hit && hit.expiresAtMs > now) return hit.principal;
    const epoch = this.epoch;
    const row = await findActiveApiKey(this.db, hash);
    const principal = row
      ? { keyId: row.id, organizationId: row.organizationId, subject: row.subject, scopes: row.scopes, roles: row.roles, rateLimitRunsPerMinute: row.rateLimitRunsPerMinute }
      : null;
    // A key in its rotation grace period is cached no longer than it works.
    const expiresAtMs = Math.min(now + this.cacheTtlMs, row?.revokedAt?.getTime() ?? Infinity);
    if (epoch === this.epoch) this.cache.set(hash, { principal, expiresAtMs });
    if (row && (!row.lastUsedAt || now - row.lastUsedAt.getTime() > TOUCH_INTERVAL_MS)) this.touch(row.id);
    return principal;
  }

  private touch(id: string): void {
    if (this.touching.has(id)) return;
    this.touching.add(id);
    touchApiKey(this.db, id)
      .catch((err: unknown) => this.options.logger?.warn({ err, keyId: id }, 'could not record the key\'s last use'))
      .finally(() => this.touching.delete(id));
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
    if (!principal) {
      if (auth.isPlatformKey(key)) {
        throw new ForbiddenError('the platform-admin key (BATON_ADMIN_API_KEY) is no organization\'s key: use a key of the organization (POST /v1/organizations returns its first one)');
      }
      throw new UnauthorizedError('invalid API key');
    }
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

/**
 * Why `key` may not use a platform route, or `undefined` when it may (it is the platform-admin
 * key): 403 when no platform-admin key is configured or `key` is an organization's key, 401
 * when it is missing or unknown.
 */
export async function platformRefusal(auth: ApiKeyAuthenticator, key: string | undefined): Promise<AppError | undefined> {
  if (!auth.platformEnabled) return new ForbiddenError('platform administration is off: set BATON_ADMIN_API_KEY to enable it');
  if (!key) return new UnauthorizedError('missing platform-admin key: send "Authorization: Bearer <BATON_ADMIN_API_KEY>"');
  if (auth.isPlatformKey(key)) return undefined;
  if (await auth.resolve(key)) return new ForbiddenError('an organization\'s key cannot do this: it needs the platform-admin key (BATON_ADMIN_API_KEY)');
  return new UnauthorizedError('invalid platform-admin key');
}

/** Middleware: require the platform-admin key (`BATON_ADMIN_API_KEY`) as Bearer. */
export function requirePlatformAdmin(auth: ApiKeyAuthenticator) {
  return async (req: Request, _res: Response, next: NextFunction): Promise<void> => {
    const refusal = await platformRefusal(auth, credentialFrom(req));
    if (refusal) throw refusal;
    next();
  };
}
