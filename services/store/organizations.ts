/**
 * Organizations (tenants), created by the platform administrator. An organization is useless
 * without a key, so it is created with a first admin key, shown once.
 */
import { asc } from 'drizzle-orm';
import { ConflictError } from '../../lib/index.js';
import { ALL_SCOPES, organizations } from '../../db/index.js';
import type { StoreDeps } from './deps.js';
import { insertApiKey, type CreatedApiKey } from './api-keys.js';

/** An organization as the platform routes show it. */
export interface OrganizationView {
  id: string;
  slug: string;
  name: string;
  createdAt: Date;
}

/** Name and subject of the key an organization is created with. */
export const FIRST_KEY = { name: 'first admin key', subject: 'service:admin' } as const;

/**
 * Create an organization and its first key (every scope, subject `service:admin`), in one
 * transaction.
 * @returns the organization and the key, shown once.
 * @throws {ConflictError} naming `slug` when an organization already has it.
 */
export async function createOrganization(
  deps: Pick<StoreDeps, 'database'>,
  request: { slug: string; name: string },
): Promise<OrganizationView & { apiKey: CreatedApiKey }> {
  return deps.database.db.transaction(async (tx) => {
    const [org] = await tx
      .insert(organizations)
      .values({ slug: request.slug, name: request.name })
      .onConflictDoNothing({ target: organizations.slug })
      .returning();
    if (!org) throw new ConflictError(`an organization with slug "${request.slug}" exists`, { field: 'slug' });
    const apiKey = await insertApiKey(tx, org.id, { ...FIRST_KEY, scopes: [...ALL_SCOPES], roles: [] });
    return { id: org.id, slug: org.slug, name: org.name, createdAt: org.createdAt, apiKey };
  });
}

/** Every organization, oldest first. */
export async function listOrganizations(deps: Pick<StoreDeps, 'database'>): Promise<OrganizationView[]> {
  return deps.database.db.select().from(organizations).orderBy(asc(organizations.createdAt), asc(organizations.id));
}
