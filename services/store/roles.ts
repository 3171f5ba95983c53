/**
 * Organization role membership (issue 12 item 7): which subjects (`user:alice`, `service:x`) hold a
 * role. A checkpoint with `approvers: [{role}]` mints one decide link per member of the role
 * (`services/engine/checkpoints.ts`), so a `required: N` quorum can be reached through links; an
 * API key's own `roles` keep counting too.
 */
import { and, arrayContains, asc, eq, inArray, sql } from 'drizzle-orm';
import { NotFoundError } from '../../lib/index.js';
import { roles } from '../../db/index.js';
import type { Database } from '../../db/index.js';
import type { StoreDeps } from './deps.js';

/** Public view of a role: `{role, members, updatedAt}` (ISO 8601). */
export interface RoleView {
  role: string;
  /** Subjects holding the role, in the order they were given (duplicates removed). */
  members: string[];
  updatedAt: string;
}

function view(row: typeof roles.$inferSelect): RoleView {
  return { role: row.role, members: row.members, updatedAt: row.updatedAt.toISOString() };
}

/** Replace the members of `role` (creating it); returns the stored view. */
export async function putRoleMembers(deps: Pick<StoreDeps, 'database'>, organizationId: string, role: string, members: string[]): Promise<RoleView> {
  const unique = [...new Set(members)];
  const [row] = await deps.database.db
    .insert(roles)
    .values({ organizationId, role, members: unique })
    .onConflictDoUpdate({ target: [roles.organizationId, roles.role], set: { members: unique, updatedAt: sql`now()` } })
    .returning();
  if (!row) throw new Error('role upsert returned nothing');
  return view(row);
}

/** Every role of the organization that was ever set, by name. */
export async function listRoles(deps: Pick<StoreDeps, 'database'>, organizationId: string): Promise<RoleView[]> {
  const rows = await deps.database.db.select().from(roles).where(eq(roles.organizationId, organizationId)).orderBy(asc(roles.role));
  return rows.map(view);
}

/**
 * One role.
 * @throws {NotFoundError} when the role was never set in the organization.
 */
export async function getRole(deps: Pick<StoreDeps, 'database'>, organizationId: string, role: string): Promise<RoleView> {
  const [row] = await deps.database.db.select().from(roles).where(and(eq(roles.organizationId, organizationId), eq(roles.role, role)));
  if (!row) throw new NotFoundError(`role ${role} not found`);
  return view(row);
}

/** Members of each of `names` (roles never set, or set empty, map to `[]`). */
export async function roleMembers(db: Pick<Database['db'], 'select'>, organizationId: string, names: string[]): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>(names.map((n) => [n, []]));
  if (names.length === 0) return found;
  const rows = await db.select().from(roles).where(and(eq(roles.organizationId, organizationId), inArray(roles.role, names)));
  for (const r of rows) if (found.has(r.role)) found.set(r.role, r.members);
  return found;
}

/** The roles `subject` is a member of in the organization. */
export async function memberRoles(deps: Pick<StoreDeps, 'database'>, organizationId: string, subject: string): Promise<string[]> {
  const rows = await deps.database.db
    .select({ role: roles.role })
    .from(roles)
    .where(and(eq(roles.organizationId, organizationId), arrayContains(roles.members, [subject])));
  return rows.map((r) => r.role);
}
