/** A second organization with its own API key, to check that one tenant never sees another's data. */
import { randomBytes } from 'node:crypto';
import { apiKeys, hashApiKey, organizations } from '../../db/index.js';
import type { Stack } from './stack.js';

/**
 * Create an organization and an API key for it.
 * @returns its id and a client (`baseUrl`, `apiKey`) for `api()`.
 */
export async function otherOrganization(
  stack: Stack,
  scopes: string[] = ['runs:read', 'runs:write', 'admin'],
): Promise<{ organizationId: string; client: { baseUrl: string; apiKey: string } }> {
  const { db } = stack.deps.database;
  const [org] = await db
    .insert(organizations)
    .values({ slug: `other-${randomBytes(4).toString('hex')}`, name: 'Other organization' })
    .returning({ id: organizations.id });
  if (!org) throw new Error('organization not created');
  const key = `other_${randomBytes(12).toString('hex')}`;
  await db.insert(apiKeys).values({
    organizationId: org.id,
    name: 'other',
    keyHash: hashApiKey(key),
    prefix: key.slice(0, 8),
    subject: 'service:other',
    scopes,
  });
  return { organizationId: org.id, client: { baseUrl: stack.baseUrl, apiKey: key } };
}
