/**
 * Definitions in Postgres: idempotent sync from files, new versions from the API, and lookup by
 * slug and version. A stored (organization, slug, version) is never changed: runs pin it.
 */
import { createHash } from 'node:crypto';
import { and, asc, desc, eq, sql } from 'drizzle-orm';
import { isMap, isScalar, parseDocument, type Document } from 'yaml';
import { ConflictError, DefinitionError, NotFoundError, parseYamlSource, problemsError } from '../../lib/index.js';
import { definitions, type Db } from '../../db/index.js';
import { checkDefinitionSource, parseDefinition, parseDefinitionObject, SLUG_PATTERN, type Definition } from '../../definitions/index.js';
import type { StoreDeps } from './deps.js';
import { agentTypesOf } from './agents.js';

export type DefinitionRow = typeof definitions.$inferSelect;

/** A stored definition with its parsed spec. */
export interface StoredDefinition {
  id: string;
  slug: string;
  version: number;
  /** Validated when stored (sync or API); never edited in place. */
  spec: Definition;
}

/** Insert one definition version; `undefined` when (organization, slug, version) already exists. */
async function insertDefinition(db: Db, organizationId: string, definition: Definition, source: string): Promise<DefinitionRow | undefined> {
  const [row] = await db
    .insert(definitions)
    .values({
      organizationId,
      slug: definition.slug,
      version: definition.version,
      name: definition.name,
      description: definition.description ?? null,
      source,
      spec: definition,
      checksum: checksumOf(source),
    })
    .onConflictDoNothing()
    .returning();
  return row;
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
    const checksum = checksumOf(source);
    const inserted = await insertDefinition(db, organizationId, definition, source);
    if (inserted) {
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

/** SHA-256 of a definition's source text, hex. */
function checksumOf(source: string): string {
  return createHash('sha256').update(source).digest('hex');
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

/** Definitions resolved by (organization, slug) — latest — or (organization, slug, version). */
const resolved = new Map<string, StoredDefinition>();
const RESOLVED_LIMIT = 1000;
const resolvedKey = (organizationId: string, slug: string, version?: number) => `${organizationId}\0${slug}\0${version ?? 'latest'}`;

/**
 * `findDefinition` through a per-process cache. A given version never changes, so it is cached
 * for good; "the latest" can change, so a cached answer comes with `latest: true` and the caller
 * must check that no newer version exists in the statement that uses it (`baton_start_run`
 * does), then {@link forgetResolvedDefinition} and look again if one does.
 * @throws {NotFoundError} naming the slug (and version); misses are not cached.
 */
export async function findDefinitionCached(
  db: Db,
  organizationId: string,
  slug: string,
  version?: number,
): Promise<StoredDefinition> {
  const key = resolvedKey(organizationId, slug, version);
  const hit = resolved.get(key);
  if (hit) return hit;
  const stored = await findDefinition(db, organizationId, slug, version);
  if (resolved.size >= RESOLVED_LIMIT) resolved.delete(resolved.keys().next().value ?? key);
  resolved.set(key, stored);
  return stored;
}

/** Drop the cached latest version of a definition (a newer one exists). */
export function forgetResolvedDefinition(organizationId: string, slug: string): void {
  resolved.delete(resolvedKey(organizationId, slug));
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

// ---------------------------------------------------------------------------------------------
// New versions from the API, and listings
// ---------------------------------------------------------------------------------------------

/** A step as the definitions API shows it. */
export interface DefinitionStepSummary {
  id: string;
  /** Step type: an agent type, or `checkpoint`. */
  type: string;
  /** The named agent (`null` for checkpoints, inline functions and orchestrator steps). */
  agent: string | null;
  needs: string[];
}

/** A stored definition version as the definitions API shows it (`POST /v1/definitions`). */
export interface DefinitionVersionView {
  slug: string;
  version: number;
  name: string;
  description: string | null;
  /** ISO 8601. */
  createdAt: string;
  /** SHA-256 of `source`, hex. */
  checksum: string;
  steps: DefinitionStepSummary[];
}

/** The body of a definition-create request: YAML text, or the definition as a JSON value. */
export type DefinitionBody = { format: 'yaml'; source: string } | { format: 'json'; value: unknown };

/** Steps of a definition as `{id, type, agent, needs}`, in file order. */
export function stepSummaries(definition: Pick<Definition, 'steps'>): DefinitionStepSummary[] {
  return definition.steps.map((s) => ({
    id: s.id,
    type: s.type,
    agent: s.kind === 'agent' ? s.agent : null,
    needs: [...s.needs],
  }));
}

function viewOf(row: DefinitionRow): DefinitionVersionView {
  const { spec } = toStored(row);
  return {
    slug: row.slug,
    version: row.version,
    name: row.name,
    description: row.description,
    createdAt: row.createdAt.toISOString(),
    checksum: row.checksum,
    steps: stepSummaries(spec),
  };
}

/** Latest stored version of a slug in the organization (0 when there is none). */
async function latestVersion(db: Db, organizationId: string, slug: string): Promise<number> {
  const [row] = await db
    .select({ version: sql<number | null>`max(${definitions.version})` })
    .from(definitions)
    .where(and(eq(definitions.organizationId, organizationId), eq(definitions.slug, slug)));
  return row?.version ?? 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A usable slug, or `undefined` (the loader then reports the problem). */
function slugFrom(value: unknown): string | undefined {
  return typeof value === 'string' && SLUG_PATTERN.test(value) ? value : undefined;
}

/**
 * YAML text with a top-level `version: <version>` added. For a block mapping the line is
 * appended after everything else, at the mapping's own indentation, so every other node keeps
 * its line and column (the loader's `file:line:column` positions stay right). Other shapes (a
 * flow mapping, an explicit `...` document end) go through the `yaml` Document API and are
 * re-rendered.
 */
function yamlWithVersion(source: string, doc: Document.Parsed, version: number): string {
  const root = doc.contents;
  if (doc.errors.length > 0 || !isMap(root) || root.has('version')) return source;
  const start = root.range?.[0];
  if (!root.flow && !doc.directives.docEnd && start !== undefined) {
    const indent = start - (source.lastIndexOf('\n', start - 1) + 1);
    const newline = source === '' || source.endsWith('\n') ? '' : '\n';
    return `${source}${newline}${' '.repeat(indent)}version: ${version}\n`;
  }
  doc.set('version', version);
  return doc.toString({ lineWidth: 0 });
}

/**
 * Store `definition` as the given (slug, version) of the organization, which must be new.
 * @param source - the text it was parsed from (kept for audit; its SHA-256 is the checksum).
 * @returns the stored row.
 * @throws {ConflictError} (field `version`) when that version already exists — e.g. a concurrent
 *   create of the same version won the unique index.
 */
export async function createDefinitionVersion(
  db: Db,
  organizationId: string,
  definition: Definition,
  source: string,
): Promise<DefinitionRow> {
  const row = await insertDefinition(db, organizationId, definition, source);
  if (!row) {
    throw new ConflictError(`definition "${definition.slug}" version ${definition.version} already exists`, {
      field: 'version',
      details: { slug: definition.slug, version: definition.version },
    });
  }
  return row;
}

/**
 * Create the next version of a definition from an API request: version = latest + 1 (1 for a new
 * slug). A body without `version` gets that number injected before it is validated; a body that
 * states another version is refused. Agents are checked against the organization's named agents
 * and `deps.agentTypes` (agents registered in code).
 *
 * YAML is validated as `<slug>.yaml` (`request.yaml` when no slug can be read), so problems read
 * `kpi-tracking.yaml:12:5: …`; JSON as `request` (`request: steps[1].needs[0]: …`). The stored
 * source is the text with its `version` (YAML), or the JSON body with its `version`, pretty-printed.
 *
 * @returns the stored version with its steps.
 * @throws {DefinitionError} (400 `DEFINITION_INVALID`) with every problem in `details.problems`,
 *   also when an orchestrator step starts a stored definition that (through the latest versions'
 *   orchestrator steps) runs this one again.
 * @throws {ConflictError} (409, field `version`) when the stated version is not latest + 1, or a
 *   concurrent request created that version first.
 */
export async function createDefinition(
  deps: StoreDeps,
  organizationId: string,
  body: DefinitionBody,
): Promise<DefinitionVersionView> {
  const { db } = deps.database;
  const agents = new Map([...deps.agentTypes, ...(await agentTypesOf(db, organizationId))]);
  let definition: Definition;
  let source: string;
  let next: number;
  if (body.format === 'yaml') {
    checkDefinitionSource(body.source, 'request.yaml');
    const doc = parseDocument(body.source);
    const root = doc.errors.length === 0 && isMap(doc.contents) ? doc.contents : undefined;
    const slugNode: unknown = root?.get('slug', true);
    const slug = slugFrom(isScalar(slugNode) ? slugNode.value : undefined);
    next = slug === undefined ? 1 : (await latestVersion(db, organizationId, slug)) + 1;
    source = yamlWithVersion(body.source, doc, next);
    definition = parseDefinition(source, { file: `${slug ?? 'request'}.yaml`, agents });
  } else {
    const slug = isRecord(body.value) ? slugFrom(body.value['slug']) : undefined;
    next = slug === undefined ? 1 : (await latestVersion(db, organizationId, slug)) + 1;
    const value = isRecord(body.value) && !('version' in body.value) ? { ...body.value, version: next } : body.value;
    definition = parseDefinitionObject(value, { file: 'request', agents });
    source = `${JSON.stringify(value, null, 2)}\n`;
  }
  await refuseSubrunCycle(db, organizationId, definition, body.format === 'yaml' ? source : undefined);
  if (definition.version !== next) {
    throw new ConflictError(
      `version must be ${next}, the next version of "${definition.slug}" (got ${definition.version}); omit it to get the next one`,
      { field: 'version', details: { slug: definition.slug, expected: next, got: definition.version } },
    );
  }
  return viewOf(await createDefinitionVersion(db, organizationId, definition, source));
}

/** One slug in the definitions list. */
export interface DefinitionListItem {
  slug: string;
  /** The latest version's number, name, description and creation time (ISO 8601). */
  version: number;
  name: string;
  description: string | null;
  /** How many versions the slug has. */
  versions: number;
  createdAt: string;
}

/** The organization's definitions: the latest version of each slug, by slug. */
export async function listDefinitions(db: Db, organizationId: string): Promise<DefinitionListItem[]> {
  const rows = await db
    .selectDistinctOn([definitions.slug], {
      slug: definitions.slug,
      version: definitions.version,
      name: definitions.name,
      description: definitions.description,
      createdAt: definitions.createdAt,
      versions: sql<number>`(count(*) over (partition by ${definitions.slug}))::int`,
    })
    .from(definitions)
    .where(eq(definitions.organizationId, organizationId))
    .orderBy(asc(definitions.slug), desc(definitions.version));
  return rows.map((r) => ({
    slug: r.slug,
    version: r.version,
    name: r.name,
    description: r.description,
    versions: r.versions,
    createdAt: r.createdAt.toISOString(),
  }));
}

/** One version in a slug's history. */
export interface DefinitionVersionItem {
  version: number;
  name: string;
  description: string | null;
  /** ISO 8601. */
  createdAt: string;
  /** SHA-256 of the source, hex. */
  checksum: string;
}

/**
 * Every version of a slug, newest first.
 * @throws {NotFoundError} (field `slug`) when the organization has no such slug.
 */
export async function definitionVersions(db: Db, organizationId: string, slug: string): Promise<DefinitionVersionItem[]> {
  const rows = await db
    .select({
      version: definitions.version,
      name: definitions.name,
      description: definitions.description,
      createdAt: definitions.createdAt,
      checksum: definitions.checksum,
    })
    .from(definitions)
    .where(and(eq(definitions.organizationId, organizationId), eq(definitions.slug, slug)))
    .orderBy(desc(definitions.version));
  if (rows.length === 0) throw new NotFoundError(`definition "${slug}" not found`, { field: 'slug' });
  return rows.map((r) => ({ ...r, createdAt: r.createdAt.toISOString() }));
}

/**
 * One version with its source text, input schema and steps.
 * @throws {NotFoundError} (field `version`) when the organization has no such version.
 */
export async function getDefinitionVersion(
  db: Db,
  organizationId: string,
  slug: string,
  version: number,
): Promise<DefinitionVersionView & { source: string; input: Record<string, unknown> }> {
  const [row] = await db
    .select()
    .from(definitions)
    .where(and(eq(definitions.organizationId, organizationId), eq(definitions.slug, slug), eq(definitions.version, version)));
  if (!row) throw new NotFoundError(`definition "${slug}" version ${version} not found`, { field: 'version' });
  return { ...viewOf(row), input: toStored(row).spec.input, source: row.source };
}

/** Stored definitions followed when looking for a sub-run cycle (a bound on the queries). */
const MAX_CYCLE_LOOKUPS = 100;

/**
 * Refuse a definition whose orchestrator step starts a stored definition that, through the
 * orchestrator steps of stored versions (the pinned one, else the latest), runs this slug again
 * (A → B → A). Direct self-recursion is refused by the loader; named orchestrator agents and
 * anything not found here are bounded at run time by `MAX_RUN_DEPTH`.
 * @param yamlSource - the YAML text, for the problem's line and column (JSON bodies: path only).
 * @throws {DefinitionError} at `steps[i].run.slug`, naming the chain.
 */
async function refuseSubrunCycle(db: Db, organizationId: string, definition: Definition, yamlSource: string | undefined): Promise<void> {
  const specs = new Map<string, Definition | undefined>();
  const load = async (slug: string, version: number | undefined): Promise<Definition | undefined> => {
    const key = `${slug}@${version ?? 'latest'}`;
    if (!specs.has(key)) {
      const [row] = await db
        .select({ spec: definitions.spec })
        .from(definitions)
        .where(and(eq(definitions.organizationId, organizationId), eq(definitions.slug, slug), ...(version === undefined ? [] : [eq(definitions.version, version)])))
        .orderBy(desc(definitions.version))
        .limit(1);
      specs.set(key, row?.spec as Definition | undefined);
    }
    return specs.get(key);
  };
  for (const [index, step] of definition.steps.entries()) {
    if (step.kind !== 'orchestrator' || step.run.slug === definition.slug) continue;
    const pending: Array<{ slug: string; version: number | undefined; chain: string[] }> = [{ slug: step.run.slug, version: step.run.version, chain: [definition.slug, step.run.slug] }];
    const seen = new Set<string>();
    while (pending.length > 0 && specs.size < MAX_CYCLE_LOOKUPS) {
      const next = pending.shift();
      if (next === undefined || seen.has(`${next.slug}@${next.version ?? ''}`)) continue;
      seen.add(`${next.slug}@${next.version ?? ''}`);
      const spec = await load(next.slug, next.version);
      for (const child of spec?.steps ?? []) {
        if (child.kind !== 'orchestrator') continue;
        const chain = [...next.chain, child.run.slug];
        if (child.run.slug === definition.slug) {
          const file = `${definition.slug}.yaml`;
          const path = ['steps', index, 'run', 'slug'];
          const position = yamlSource === undefined ? {} : parseYamlSource(yamlSource, file).positionOf(path);
          throw problemsError([
            {
              file: yamlSource === undefined ? 'request' : file,
              ...position,
              path: `steps[${index}].run.slug`,
              message: `step ${step.id}: runs ${chain.join(' → ')} (unbounded recursion through stored definitions); sub-runs are limited to MAX_RUN_DEPTH levels`,
            },
          ]);
        }
        pending.push({ slug: child.run.slug, version: child.run.version, chain });
      }
    }
  }
}
