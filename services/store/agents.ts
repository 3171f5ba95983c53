/**
 * Named agents per organization (SPEC G1): versioned, immutable rows of `agents`. `release`
 * seeds the catalog files idempotently; `POST /v1/agents` adds a version. A run pins the latest
 * version of every agent its definition names when it starts (`runs.agent_versions`), and its
 * steps execute exactly those versions, whatever is added later.
 */
import { createHash } from 'node:crypto';
import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import { ConflictError, NotFoundError } from '../../lib/index.js';
import { agents, type Db } from '../../db/index.js';
import type { AgentSpec, AgentType } from '../../agents/types.js';

/** One stored agent version, as the API shows it. */
export interface AgentVersionView extends AgentSpec {
  createdAt: string;
  checksum: string;
}

type AgentRow = typeof agents.$inferSelect;

function viewOf(row: AgentRow): AgentVersionView {
  return {
    name: row.name,
    type: row.type as AgentType,
    version: row.version,
    description: row.description,
    implementation: row.implementation,
    config: row.config,
    env: row.env,
    secrets: row.secrets,
    checksum: row.checksum,
    createdAt: row.createdAt.toISOString(),
  };
}

/** SHA-256 hex of an entry's source text. */
export function agentChecksum(source: string): string {
  return createHash('sha256').update(source, 'utf8').digest('hex');
}

/** What seeding did. */
export interface AgentSeedReport {
  created: string[];
  unchanged: string[];
}

/**
 * Seed catalog entries for an organization (idempotent): a new name or version is inserted; the
 * same version with the same source is left alone.
 * @throws {ConflictError} when an entry's source changed but its version did not (bump `version`).
 */
export async function seedAgents(db: Db, organizationId: string, entries: readonly { spec: AgentSpec; source: string; file: string }[]): Promise<AgentSeedReport> {
  const report: AgentSeedReport = { created: [], unchanged: [] };
  for (const { spec, source, file } of entries) {
    const checksum = agentChecksum(source);
    const inserted = await db
      .insert(agents)
      .values({ organizationId, ...rowOf(spec), source, checksum })
      .onConflictDoNothing()
      .returning({ name: agents.name });
    const label = `${spec.name}@${spec.version}`;
    if (inserted.length > 0) {
      report.created.push(label);
      continue;
    }
    const [existing] = await db
      .select({ checksum: agents.checksum })
      .from(agents)
      .where(and(eq(agents.organizationId, organizationId), eq(agents.name, spec.name), eq(agents.version, spec.version)));
    if (existing && existing.checksum !== checksum) {
      throw new ConflictError(`${file}: agent ${label} changed but its version did not; bump version to ${spec.version + 1}`, { field: 'version' });
    }
    report.unchanged.push(label);
  }
  return report;
}

function rowOf(spec: AgentSpec) {
  return {
    name: spec.name,
    version: spec.version,
    type: spec.type,
    implementation: spec.implementation,
    description: spec.description,
    config: spec.config,
    env: spec.env,
    secrets: spec.secrets,
  };
}

/** The organization's agents: the latest version of each name, by name. */
export async function listAgents(db: Db, organizationId: string): Promise<(AgentVersionView & { versions: number })[]> {
  const rows = await db
    .selectDistinctOn([agents.name], {
      row: agents,
      versions: sql<number>`(count(*) over (partition by ${agents.name}))::int`,
    })
    .from(agents)
    .where(eq(agents.organizationId, organizationId))
    .orderBy(agents.name, desc(agents.version));
  return rows.map((r) => ({ ...viewOf(r.row), versions: r.versions }));
}

/**
 * Every version of one agent, newest first.
 * @throws {NotFoundError} (field `name`) when the organization has no such agent.
 */
export async function agentVersions(db: Db, organizationId: string, name: string): Promise<AgentVersionView[]> {
  const rows = await db
    .select()
    .from(agents)
    .where(and(eq(agents.organizationId, organizationId), eq(agents.name, name)))
    .orderBy(desc(agents.version));
  if (rows.length === 0) throw new NotFoundError(`agent "${name}" not found`, { field: 'name' });
  return rows.map(viewOf);
}

/**
 * Add the next version of an agent (version = latest + 1, or 1 for a new name).
 * @param spec - a validated entry; its `version` must be the next one (or is set to it when
 *   `versionGiven` is false).
 * @throws {ConflictError} (field `version`) when the stated version is not latest + 1, or the type changes.
 */
export async function addAgentVersion(
  db: Db,
  organizationId: string,
  spec: AgentSpec,
  source: string,
  versionGiven: boolean,
): Promise<AgentVersionView> {
  return db.transaction(async (tx) => {
    // Serialise concurrent additions of the same name (advisory lock on org + name).
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`${organizationId}:agent:${spec.name}`}))`);
    const [latest] = await tx
      .select({ version: agents.version, type: agents.type })
      .from(agents)
      .where(and(eq(agents.organizationId, organizationId), eq(agents.name, spec.name)))
      .orderBy(desc(agents.version))
      .limit(1);
    const next = (latest?.version ?? 0) + 1;
    const version = versionGiven ? spec.version : next;
    if (version !== next) {
      throw new ConflictError(`version must be ${next}, the next version of agent "${spec.name}" (got ${version}); omit it to get the next one`, {
        field: 'version',
      });
    }
    if (latest && latest.type !== spec.type) {
      throw new ConflictError(`agent "${spec.name}" is a ${latest.type} agent; a new version cannot change its type to ${spec.type}`, { field: 'type' });
    }
    const [row] = await tx
      .insert(agents)
      .values({ organizationId, ...rowOf({ ...spec, version }), source, checksum: agentChecksum(source) })
      .returning();
    if (!row) throw new Error('agent version was not inserted');
    return viewOf(row);
  });
}

/** Agent type of the organization's agents, by name (definitions are validated against it). */
export async function agentTypesOf(db: Db, organizationId: string): Promise<Map<string, AgentType>> {
  const rows = await db
    .selectDistinctOn([agents.name], { name: agents.name, type: agents.type })
    .from(agents)
    .where(eq(agents.organizationId, organizationId))
    .orderBy(agents.name, desc(agents.version));
  return new Map(rows.map((r) => [r.name, r.type as AgentType]));
}

/**
 * The latest version of each named agent (the pins of a starting run). Names the organization
 * does not have are left out (code-registered agents, e.g. in tests).
 */
export async function latestAgentVersions(db: Db, organizationId: string, names: readonly string[]): Promise<Record<string, number>> {
  if (names.length === 0) return {};
  const rows = await db
    .select({ name: agents.name, version: sql<number>`max(${agents.version})::int` })
    .from(agents)
    .where(and(eq(agents.organizationId, organizationId), inArray(agents.name, [...names])))
    .groupBy(agents.name);
  return Object.fromEntries(rows.map((r) => [r.name, r.version]));
}

/** Versions are immutable, so an (organization, name, version) is cached for the process's life. */
const cache = new Map<string, AgentSpec>();
const CACHE_LIMIT = 1000;

/**
 * One agent version (cached: versions never change).
 * @throws {NotFoundError} when it does not exist.
 */
export async function agentVersion(db: Db, organizationId: string, name: string, version: number): Promise<AgentSpec> {
  const key = `${organizationId}\0${name}\0${version}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const [row] = await db
    .select()
    .from(agents)
    .where(and(eq(agents.organizationId, organizationId), eq(agents.name, name), eq(agents.version, version)));
  if (!row) throw new NotFoundError(`agent ${name}@${version} not found`);
  const { checksum: _checksum, createdAt: _createdAt, ...spec } = viewOf(row);
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value ?? key);
  cache.set(key, spec);
  return spec;
}
