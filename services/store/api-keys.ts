/**
 * API keys: identities with scopes and approver roles, stored as SHA-256 hashes (SPEC S1).
 * Created, listed, revoked and rotated per organization; the key itself is shown once.
 */
import { randomBytes } from 'node:crypto';
import { and, desc, eq, gt, isNull, or, sql } from 'drizzle-orm';
import { ConflictError, NotFoundError } from '../../lib/index.js';
import { apiKeys, hashApiKey, type Db } from '../../db/index.js';
import type { StoreDeps } from './deps.js';

/** A key as listed: never its hash, never the key. */
export interface ApiKeyView {
  id: string;
  name: string;
  /** The key's first 8 characters, to recognize it. */
  prefix: string;
  subject: string;
  scopes: string[];
  roles: string[];
  /** Run starts per minute in the key's own bucket (`0`: unlimited); `null`: the organization's limit. */
  rateLimitRunsPerMinute: number | null;
  createdAt: Date;
  /** Last successful authentication, approximate (written at most once a minute); null: never. */
  lastUsedAt: Date | null;
  /** When the key stopped (or, after a rotation with a grace period, will stop) working. */
  revokedAt: Date | null;
}

/** A newly created key; `key` is shown once and never stored. */
export interface CreatedApiKey extends ApiKeyView {
  key: string;
}

/** What a new key acts as. */
export interface ApiKeyRequest {
  name: string;
  /** The identity it acts as, e.g. `user:alice` (matched by `approvers: [{user: alice}]`). */
  subject: string;
  scopes: string[];
  roles: string[];
  /** Run starts per minute in the key's own bucket (`0`: unlimited); absent or `null`: the organization's limit. */
  rateLimitRunsPerMinute?: number | null | undefined;
}

const VIEW = {
  id: apiKeys.id,
  name: apiKeys.name,
  prefix: apiKeys.prefix,
  subject: apiKeys.subject,
  scopes: apiKeys.scopes,
  roles: apiKeys.roles,
  rateLimitRunsPerMinute: apiKeys.rateLimitRunsPerMinute,
  createdAt: apiKeys.createdAt,
  lastUsedAt: apiKeys.lastUsedAt,
  revokedAt: apiKeys.revokedAt,
};

/** A fresh random key: `bk_` and 24 random bytes as base64url. */
function newKey(): string {
  return `bk_${randomBytes(24).toString('base64url')}`;
}

/**
 * Insert a key for an organization (inside a transaction when `db` is one).
 * @returns the key, shown once.
 */
export async function insertApiKey(db: Pick<Db, 'insert'>, organizationId: string, request: ApiKeyRequest): Promise<CreatedApiKey> {
  const key = newKey();
  const [row] = await db
    .insert(apiKeys)
    .values({
      organizationId,
      name: request.name,
      keyHash: hashApiKey(key),
      prefix: key.slice(0, 8),
      subject: request.subject,
      scopes: request.scopes,
      roles: request.roles,
      rateLimitRunsPerMinute: request.rateLimitRunsPerMinute ?? null,
    })
    .returning(VIEW);
  if (!row) throw new Error('api key insert returned nothing');
  return { ...row, key };
}

/** Create an API key for an organization. @returns the key, shown once. */
export async function createApiKey(deps: Pick<StoreDeps, 'database'>, organizationId: string, request: ApiKeyRequest): Promise<CreatedApiKey> {
  return insertApiKey(deps.database.db, organizationId, request);
}

/** Every key of an organization (revoked ones too), newest first. */
export async function listApiKeys(deps: Pick<StoreDeps, 'database'>, organizationId: string): Promise<ApiKeyView[]> {
  return deps.database.db.select(VIEW).from(apiKeys).where(eq(apiKeys.organizationId, organizationId)).orderBy(desc(apiKeys.createdAt), desc(apiKeys.id));
}

/**
 * Revoke a key of the organization now. Revoking a revoked key changes nothing; one whose
 * rotation grace period still runs stops at once. The database trigger of migration 0010 tells
 * every API node at commit; the caller's own cache may hear it a moment later, so it forgets the
 * returned hash itself.
 * @returns the key's SHA-256 hex digest.
 * @throws {NotFoundError} when the organization has no such key.
 */
export async function revokeApiKey(deps: Pick<StoreDeps, 'database'>, organizationId: string, id: string): Promise<string> {
  const db = deps.database.db;
  const [row] = await db
    .update(apiKeys)
    .set({ revokedAt: sql`least(coalesce(${apiKeys.revokedAt}, now()), now())` })
    .where(and(eq(apiKeys.id, id), eq(apiKeys.organizationId, organizationId)))
    .returning({ keyHash: apiKeys.keyHash });
  if (!row) throw new NotFoundError(`API key ${id} not found`, { field: 'id' });
  return row.keyHash;
}

/** A rotation's result: the new key (shown once) and when the old one stops working. */
export interface RotatedApiKey extends CreatedApiKey {
  /** The id of the key it replaces. */
  replaces: string;
  /** When the replaced key stops working (now, or after the grace period). */
  replacedKeyRevokedAt: Date;
}

/**
 * Rotate a key: a new key with the same name, subject, scopes and roles; the old one revoked
 * now or `graceSeconds` from now (both old and new work meanwhile).
 * @returns the new key and the old key's SHA-256 hex digest (for the caller's cache, as with
 * {@link revokeApiKey}).
 * @throws {NotFoundError} when the organization has no such key.
 * @throws {ConflictError} when the key is already revoked (or rotated, with a grace period running).
 */
export async function rotateApiKey(
  deps: Pick<StoreDeps, 'database'>,
  organizationId: string,
  id: string,
  graceSeconds: number,
): Promise<{ rotated: RotatedApiKey; replacedKeyHash: string }> {
  return deps.database.db.transaction(async (tx) => {
    const [old] = await tx
      .select()
      .from(apiKeys)
      .where(and(eq(apiKeys.id, id), eq(apiKeys.organizationId, organizationId)))
      .for('update');
    if (!old) throw new NotFoundError(`API key ${id} not found`, { field: 'id' });
    if (old.revokedAt) throw new ConflictError(`API key ${id} is revoked${old.revokedAt > new Date() ? ' (rotated, in its grace period)' : ''}`, { field: 'id' });
    const created = await insertApiKey(tx, organizationId, { name: old.name, subject: old.subject, scopes: old.scopes, roles: old.roles, rateLimitRunsPerMinute: old.rateLimitRunsPerMinute });
    const [revoked] = await tx
      .update(apiKeys)
      .set({ revokedAt: sql`now() + make_interval(secs => ${graceSeconds})` })
      .where(eq(apiKeys.id, id))
      .returning({ revokedAt: apiKeys.revokedAt });
    if (!revoked?.revokedAt) throw new Error('api key revoke returned nothing');
    return { rotated: { ...created, replaces: id, replacedKeyRevokedAt: revoked.revokedAt }, replacedKeyHash: old.keyHash };
  });
}

/** A key found by its hash, for authentication. */
export interface ActiveApiKey {
  id: string;
  organizationId: string;
  subject: string;
  scopes: string[];
  roles: string[];
  /** The key's own run-start limit per minute; `null`: the organization's. */
  rateLimitRunsPerMinute: number | null;
  /** Set when a rotation's grace period runs: the key stops working then. */
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

/** The key with this SHA-256 hash, when it exists and is not (yet) revoked. */
export async function findActiveApiKey(db: Pick<Db, 'select'>, keyHash: string): Promise<ActiveApiKey | undefined> {
  const [row] = await db
    .select({
      id: apiKeys.id,
      organizationId: apiKeys.organizationId,
      subject: apiKeys.subject,
      scopes: apiKeys.scopes,
      roles: apiKeys.roles,
      rateLimitRunsPerMinute: apiKeys.rateLimitRunsPerMinute,
      revokedAt: apiKeys.revokedAt,
      lastUsedAt: apiKeys.lastUsedAt,
    })
    .from(apiKeys)
    .where(and(eq(apiKeys.keyHash, keyHash), or(isNull(apiKeys.revokedAt), gt(apiKeys.revokedAt, sql`now()`))));
  return row;
}

/** Record that a key was used now (callers throttle it: at most once a minute per key). */
export async function touchApiKey(db: Pick<Db, 'update'>, id: string): Promise<void> {
  await db.update(apiKeys).set({ lastUsedAt: sql`now()` }).where(eq(apiKeys.id, id));
}
