/** API keys: identities with scopes and approver roles, stored as SHA-256 hashes (SPEC S1). */
import { randomBytes } from 'node:crypto';
import { apiKeys, hashApiKey } from '../../db/index.js';
import type { StoreDeps } from './deps.js';

/** A newly created key; `key` is shown once and never stored. */
export interface CreatedApiKey {
  id: string;
  key: string;
  subject: string;
  scopes: string[];
  roles: string[];
  /** Run starts per minute in the key's own bucket (`0`: unlimited); `null`: the organization's limit. */
  rateLimitRunsPerMinute: number | null;
}

/**
 * Create an API key for an organization.
 * @param request.subject - the identity it acts as, e.g. `user:alice` (matched by `approvers: [{user: alice}]`).
 * @param request.rateLimitRunsPerMinute - the key's own run-start limit (its own bucket; `0`:
 *   unlimited); absent: it shares the organization's `RATE_LIMIT_RUNS_PER_MINUTE`.
 */
export async function createApiKey(
  deps: Pick<StoreDeps, 'database'>,
  organizationId: string,
  request: { name: string; subject: string; scopes: string[]; roles: string[]; rateLimitRunsPerMinute?: number | undefined },
): Promise<CreatedApiKey> {
  const key = `bk_${randomBytes(24).toString('base64url')}`;
  const [row] = await deps.database.db
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
    .returning({ id: apiKeys.id });
  if (!row) throw new Error('api key insert returned nothing');
  return { id: row.id, key, subject: request.subject, scopes: request.scopes, roles: request.roles, rateLimitRunsPerMinute: request.rateLimitRunsPerMinute ?? null };
}
