/** Definitions in Postgres: idempotent sync from files, and lookup by slug and version. */
import { createHash } from 'node:crypto';
import { and, desc, eq } from 'drizzle-orm';
import { DefinitionError, NotFoundError } from '../../lib/index.js';
import { definitions, type Db } from '../../db/index.js';
import type { Definition } from '../../definitions/index.js';

export type DefinitionRow = typeof definitions.$inferSelect;

/** A stored definition with its parsed spec. */
export interface StoredDefinition {
  id: string;
  slug: string;
  version: number;
  /** Validated when stored (sync or API); never edited in place. */
  spec: Definition;
}

/** Outcome of a sync, per file. */
export interface SyncReport {
  created: string[];
  unchanged: string[];
}

/**
 * Store parsed definitions for an organization. A (slug, version) already stored with the same
 * source is left alone; with a different source it is refused, because runs pin versions and a
 * version must never change under them.
 * @param sources - file text by `slug@version`, used for the checksum and kept for audit.
 * @throws {DefinitionError} when a stored version's source differs.
 */
export async function syncDefinitions(
  db: Db,
  organizationId: string,
  parsed: Array<{ definition: Definition; source: string }>,
): Promise<SyncReport> {
  const report: SyncReport = { created: [], unchanged: [] };
  for (const { definition, source } of parsed) {
    const key = `${definition.slug}@${definition.version}`;
    const checksum = createHash('sha256').update(source).digest('hex');
    const inserted = await db
      .insert(definitions)
      .values({
        organizationId,
        slug: definition.slug,
        version: definition.version,
        name: definition.name,
        description: definition.description ?? null,
        source,
        spec: definition,
        checksum,
      })
      .onConflictDoNothing()
      .returning({ id: definitions.id });
    if (inserted.length > 0) {
      report.created.push(key);
      continue;
    }
    const [existing] = await db
      .select({ checksum: definitions.checksum })
      .from(definitions)
      .where(
        and(
          eq(definitions.organizationId, organizationId),
          eq(definitions.slug, definition.slug),
          eq(definitions.version, definition.version),
        ),
      );
    if (existing?.checksum !== checksum) {
      throw new DefinitionError(
        `${definition.file}: ${key} is already stored with different content; bump "version" to change it`,
      );
    }
    report.unchanged.push(key);
  }
  return report;
}

const cache = new Map<string, StoredDefinition>();

function toStored(row: DefinitionRow): StoredDefinition {
  const hit = cache.get(row.id);
  if (hit) return hit;
  // `spec` was produced by the definitions loader when the row was written and is immutable.
  const stored: StoredDefinition = { id: row.id, slug: row.slug, version: row.version, spec: row.spec as Definition };
  cache.set(row.id, stored);
  return stored;
}

/**
 * Find a definition of the organization: the given version, or the latest.
 * @throws {NotFoundError} naming the slug (and version).
 */
export async function findDefinition(
  db: Db,
  organizationId: string,
  slug: string,
  version?: number,
): Promise<StoredDefinition> {
  const where = and(
    eq(definitions.organizationId, organizationId),
    eq(definitions.slug, slug),
    version === undefined ? undefined : eq(definitions.version, version),
  );
  const [row] = await db.select().from(definitions).where(where).orderBy(desc(definitions.version)).limit(1);
  if (!row) {
    throw new NotFoundError(
      version === undefined ? `definition "${slug}" not found` : `definition "${slug}" version ${version} not found`,
      { field: version === undefined ? 'definition' : 'version' },
    );
  }
  return toStored(row);
}

/**
 * Load a definition by id (the version a run pinned).
 * @param db - the database or, inside a run's transaction, that transaction (so a caller
 *   holding a connection never waits for a second one from the pool).
 */
export async function definitionById(db: Pick<Db, 'select'>, id: string): Promise<StoredDefinition> {
  const hit = cache.get(id);
  if (hit) return hit;
  const [row] = await db.select().from(definitions).where(eq(definitions.id, id));
  if (!row) throw new NotFoundError(`definition ${id} not found`);
  return toStored(row);
}
