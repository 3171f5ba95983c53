/** Read models for the API: runs, their events, approvals. Always scoped to an organization. */
import { and, asc, desc, eq, gt, inArray, sql } from 'drizzle-orm';
import { NotFoundError, ValidationError, type SerializedError } from '../../lib/index.js';
import { approvals, definitions, runEvents, runs, stepAttempts, steps, stepItems, type ApprovalStatus, type Db, type RunStatus } from '../../db/index.js';
import { approvalResponsesOf, approvalSummary, type ApprovalRow } from './approvals.js';
import { definitionById } from './definitions-store.js';
import type { StoreDeps } from './deps.js';
import { listAssets, listDeliverables } from './assets.js';

const iso = (d: Date | null) => d?.toISOString() ?? null;

/**
 * A run of the organization.
 * @throws {NotFoundError} when it does not exist there (another organization's ids included).
 */
async function runOfOrganization(db: Db, organizationId: string, runId: string): Promise<typeof runs.$inferSelect> {
  const [run] = await db
    .select()
    .from(runs)
    .where(and(eq(runs.id, runId), eq(runs.organizationId, organizationId)));
  if (!run) throw new NotFoundError(`run ${runId} not found`);
  return run;
}

/** A run's step rows in the order its definition lists the steps. */
async function stepsInDefinitionOrder(db: Db, run: typeof runs.$inferSelect) {
  const { spec } = await definitionById(db, run.definitionId);
  const order = new Map(spec.steps.map((s, i) => [s.id, i]));
  const rows = await db.select().from(steps).where(eq(steps.runId, run.id));
  return rows.sort((a, b) => (order.get(a.stepId) ?? 0) - (order.get(b.stepId) ?? 0));
}

/** Public view of a run (`GET /v1/runs/:id`). */
export async function getRunView(deps: Pick<StoreDeps, 'database'>, organizationId: string, runId: string): Promise<Record<string, unknown>> {
  const { db } = deps.database;
  const run = await runOfOrganization(db, organizationId, runId);
  const stepRows = await stepsInDefinitionOrder(db, run);
  const approvalRows = await db.select().from(approvals).where(eq(approvals.runId, runId)).orderBy(asc(approvals.createdAt));
  const [assetList, deliverableList] = await Promise.all([listAssets(db, organizationId, runId), listDeliverables(db, organizationId, runId)]);
  const ofStep = <T extends { stepId: string }>(list: readonly T[], stepId: string) =>
    list.filter((item) => item.stepId === stepId).map(({ stepId: _stepId, ...rest }) => rest);
  return {
    id: run.id,
    definition: run.definitionSlug,
    version: run.definitionVersion,
    status: run.status,
    ...(await runLinks(deps, run)),
    input: run.input,
    output: run.output,
    error: run.error,
    createdAt: iso(run.createdAt),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    steps: stepRows.map((s) => ({
      id: s.stepId,
      type: s.type,
      agent: s.agent,
      status: s.status,
      attempts: s.attempts,
      generation: s.generation,
      needs: s.needs,
      output: s.output,
      error: s.error,
      assets: ofStep(assetList, s.stepId),
      deliverables: ofStep(deliverableList, s.stepId),
      queuedAt: iso(s.queuedAt),
      startedAt: iso(s.startedAt),
      finishedAt: iso(s.finishedAt),
    })),
    approvals: await withResponses(deps, approvalRows),
  };
}

/**
 * Sub-orchestration links (D6): the parent run and step of a child run, and the child runs a
 * run's orchestrator steps started.
 */
async function runLinks(
  deps: Pick<StoreDeps, 'database'>,
  run: typeof runs.$inferSelect,
): Promise<{ parent: { runId: string; stepId: string | null } | null; children: Array<{ id: string; stepId: string | null; definition: string; status: string }> }> {
  const children = await deps.database.db
    .select({ id: runs.id, stepId: runs.parentStepId, definition: runs.definitionSlug, status: runs.status })
    .from(runs)
    .where(eq(runs.parentRunId, run.id))
    .orderBy(asc(runs.createdAt));
  return { parent: run.parentRunId ? { runId: run.parentRunId, stepId: run.parentStepId } : null, children };
}

/** Approvals (every attempt) with every response: who, when, how, comment, modifications. */
async function withResponses(deps: Pick<StoreDeps, 'database'>, rows: ApprovalRow[]): Promise<Array<Record<string, unknown>>> {
  const responses = await approvalResponsesOf(deps, rows.map((r) => r.id));
  return rows.map((r) => ({ ...approvalSummary(r), responses: responses.get(r.id) ?? [] }));
}

/** Run status only (used by the SSE stream). */
export async function runStatus(deps: Pick<StoreDeps, 'database'>, organizationId: string, runId: string): Promise<string> {
  const [run] = await deps.database.db
    .select({ status: runs.status })
    .from(runs)
    .where(and(eq(runs.id, runId), eq(runs.organizationId, organizationId)));
  if (!run) throw new NotFoundError(`run ${runId} not found`);
  return run.status;
}

/** One entry of a run's history. */
export interface RunEventView {
  seq: number;
  type: string;
  stepId: string | null;
  data: unknown;
  createdAt: string;
}

/**
 * A run's events with `seq > afterSeq`, oldest first.
 * @param limit - at most this many events.
 */
export async function listEvents(deps: Pick<StoreDeps, 'database'>, runId: string, afterSeq = 0, limit = 1000): Promise<RunEventView[]> {
  const rows = await deps.database.db
    .select()
    .from(runEvents)
    .where(and(eq(runEvents.runId, runId), gt(runEvents.seq, afterSeq)))
    .orderBy(asc(runEvents.seq))
    .limit(limit);
  return rows.map((e) => ({ seq: e.seq, type: e.type, stepId: e.stepId, data: e.data, createdAt: e.createdAt.toISOString() }));
}

/** One event by sequence number. */
export async function getEvent(deps: Pick<StoreDeps, 'database'>, runId: string, seq: number) {
  const [row] = await deps.database.db
    .select({ event: runEvents, webhookUrl: runs.webhookUrl })
    .from(runEvents)
    .innerJoin(runs, eq(runs.id, runEvents.runId))
    .where(and(eq(runEvents.runId, runId), eq(runEvents.seq, seq)));
  return row;
}

/**
 * Opaque inbox cursor: the id of the last item. The next page compares (created_at, id) with
 * that row's own values in SQL — a timestamp copied through JavaScript would lose Postgres'
 * microseconds and skip rows created within the same millisecond.
 */
function encodeCursor(id: string): string {
  return Buffer.from(id).toString('base64url');
}

/**
 * One page of a keyset query that fetched `limit + 1` rows: the page, and the cursor of its last
 * row when more rows follow.
 */
function keysetPage<R>(rows: R[], limit: number, idOf: (row: R) => string): { page: R[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { page, nextCursor: rows.length > limit && last ? encodeCursor(idOf(last)) : null };
}

function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
    throw new ValidationError('invalid cursor', { field: 'cursor' });
  }
  return id;
}

/**
 * An organization's approvals, newest first, with age in milliseconds and the deadline.
 * @param options.cursor - `nextCursor` of the previous page.
 * @throws {ValidationError} for a malformed cursor (field `cursor`).
 */
export async function listApprovals(
  deps: Pick<StoreDeps, 'database'>,
  organizationId: string,
  options: { status?: ApprovalStatus; limit?: number; cursor?: string },
): Promise<{ items: Array<Record<string, unknown>>; nextCursor: string | null }> {
  const limit = options.limit ?? 50;
  const after = options.cursor ? decodeCursor(options.cursor) : undefined;
  const rows = await deps.database.db
    .select({ approval: approvals, ageMs: sql<number>`(extract(epoch from now() - ${approvals.createdAt}) * 1000)::float8` })
    .from(approvals)
    .where(
      and(
        eq(approvals.organizationId, organizationId),
        options.status ? eq(approvals.status, options.status) : undefined,
        after
          ? sql`(${approvals.createdAt}, ${approvals.id}) < (select a.created_at, a.id from approvals a where a.id = ${after}::uuid)`
          : undefined,
      ),
    )
    .orderBy(desc(approvals.createdAt), desc(approvals.id))
    .limit(limit + 1);
  const { page, nextCursor } = keysetPage(rows, limit, (r) => r.approval.id);
  return { items: page.map((r) => ({ ...approvalSummary(r.approval), ageMs: Math.round(r.ageMs) })), nextCursor };
}

/** Run statuses (filter values of `GET /v1/runs`). */

/** Filters and page of {@link listRuns}. */
export interface ListRunsOptions {
  /** Any of these statuses (all when absent or empty). */
  statuses?: readonly RunStatus[];
  /** Definition slug. */
  definition?: string;
  /**
   * Only runs created strictly after / before this instant: an ISO 8601 timestamp with an offset
   * (validated by the caller), compared in Postgres as `timestamptz` at full precision.
   */
  createdAfter?: string;
  createdBefore?: string;
  /** Page size, 1..200 (default 50). */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

/** One run in the runs list. */
export interface RunListItem {
  id: string;
  definition: string;
  version: number;
  status: string;
  /** ISO 8601; `startedAt` / `finishedAt` are null until then. */
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** Why the run failed or was cancelled; null otherwise. */
  error: SerializedError | null;
}

/**
 * An organization's runs, newest first (by creation time, then id), filtered and cursor-paginated.
 * The cursor is the last item's id; the next page compares `(created_at, id)` with that run's own
 * row in SQL (never a timestamp copied through JavaScript).
 * @throws {ValidationError} for a malformed cursor (field `cursor`).
 */
export async function listRuns(
  deps: Pick<StoreDeps, 'database'>,
  organizationId: string,
  options: ListRunsOptions = {},
): Promise<{ items: RunListItem[]; nextCursor: string | null }> {
  const limit = options.limit ?? 50;
  const after = options.cursor ? decodeCursor(options.cursor) : undefined;
  const statuses = options.statuses ?? [];
  const rows = await deps.database.db
    .select({
      id: runs.id,
      definition: runs.definitionSlug,
      version: runs.definitionVersion,
      status: runs.status,
      createdAt: runs.createdAt,
      startedAt: runs.startedAt,
      finishedAt: runs.finishedAt,
      error: runs.error,
    })
    .from(runs)
    .where(
      and(
        eq(runs.organizationId, organizationId),
        statuses.length > 0 ? inArray(runs.status, [...statuses]) : undefined,
        options.definition === undefined ? undefined : eq(runs.definitionSlug, options.definition),
        options.createdAfter === undefined ? undefined : sql`${runs.createdAt} > ${options.createdAfter}::timestamptz`,
        options.createdBefore === undefined ? undefined : sql`${runs.createdAt} < ${options.createdBefore}::timestamptz`,
        after
          ? sql`(${runs.createdAt}, ${runs.id}) < (select r.created_at, r.id from runs r where r.id = ${after}::uuid and r.organization_id = ${organizationId}::uuid)`
          : undefined,
      ),
    )
    .orderBy(desc(runs.createdAt), desc(runs.id))
    .limit(limit + 1);
  const { page, nextCursor } = keysetPage(rows, limit, (r) => r.id);
  return {
    items: page.map((r) => ({
      id: r.id,
      definition: r.definition,
      version: r.version,
      status: r.status,
      createdAt: r.createdAt.toISOString(),
      startedAt: iso(r.startedAt),
      finishedAt: iso(r.finishedAt),
      // Written by the engine only, as serializeError(…) records.
      error: r.error,
    })),
    nextCursor,
  };
}

/** Version of the manifest format; bumped when a field changes meaning or disappears. */
export const MANIFEST_VERSION = 1;

/**
 * Everything needed to audit or replay a run (`GET /v1/runs/:id/manifest`):
 * `{manifestVersion, run, definition: {id, slug, version, name, checksum, source}, steps (file
 * order, each with every attempt), approvals (every attempt, with every response), events (all,
 * by seq)}`. Timestamps are ISO 8601.
 *
 * The parts are read one after another, not in one snapshot: for a run still in progress a later
 * part may be slightly ahead of an earlier one (never the reverse).
 * @throws {NotFoundError} when the run does not exist in the organization.
 */
export async function getRunManifest(deps: Pick<StoreDeps, 'database'>, organizationId: string, runId: string): Promise<Record<string, unknown>> {
  const { db } = deps.database;
  const run = await runOfOrganization(db, organizationId, runId);
  const [definition] = await db
    .select({
      id: definitions.id,
      slug: definitions.slug,
      version: definitions.version,
      name: definitions.name,
      checksum: definitions.checksum,
      source: definitions.source,
    })
    .from(definitions)
    .where(eq(definitions.id, run.definitionId));
  if (!definition) throw new NotFoundError(`definition ${run.definitionId} not found`);
  const stepRows = await stepsInDefinitionOrder(db, run);
  const attemptRows = await db
    .select()
    .from(stepAttempts)
    .where(eq(stepAttempts.runId, runId))
    .orderBy(asc(stepAttempts.stepId), asc(stepAttempts.attempt));
  const approvalRows = await db.select().from(approvals).where(eq(approvals.runId, runId)).orderBy(asc(approvals.createdAt), asc(approvals.generation));
  const approvalViews = await withResponses(deps, approvalRows);
  const itemRows = await db.select().from(stepItems).where(eq(stepItems.runId, runId)).orderBy(asc(stepItems.stepId), asc(stepItems.generation), asc(stepItems.idx));
  const links = await runLinks(deps, run);
  // Events last: an event never precedes the state it reports, so the history covers the rest.
  const eventRows = await db.select().from(runEvents).where(eq(runEvents.runId, runId)).orderBy(asc(runEvents.seq));

  return {
    manifestVersion: MANIFEST_VERSION,
    run: {
      id: run.id,
      status: run.status,
      input: run.input,
      output: run.output,
      error: run.error,
      createdAt: iso(run.createdAt),
      startedAt: iso(run.startedAt),
      finishedAt: iso(run.finishedAt),
      createdBy: run.createdBy,
      webhookUrl: run.webhookUrl,
      idempotencyKey: run.idempotencyKey,
      rootGeneration: run.rootGeneration,
      ...links,
    },
    definition,
    steps: stepRows.map((s) => ({
      id: s.stepId,
      type: s.type,
      agent: s.agent,
      needs: s.needs,
      status: s.status,
      generation: s.generation,
      attempts: attemptRows
        .filter((a) => a.stepId === s.stepId)
        .map((a) => ({
          attempt: a.attempt,
          generation: a.generation,
          status: a.status,
          jobId: a.jobId,
          input: a.input,
          output: a.output,
          error: a.error,
          cacheHit: a.cacheHit,
          startedAt: iso(a.startedAt),
          finishedAt: iso(a.finishedAt),
        })),
      items: itemRows
        .filter((i) => i.stepId === s.stepId)
        .map((i) => ({
          index: i.idx,
          generation: i.generation,
          status: i.status,
          item: i.item,
          input: i.input,
          output: i.output,
          error: i.error,
          attempts: i.attempts,
          startedAt: iso(i.startedAt),
          finishedAt: iso(i.finishedAt),
        })),
    })),
    approvals: approvalViews,
    events: eventRows.map((e) => ({
      seq: e.seq,
      type: e.type,
      stepId: e.stepId,
      data: e.data,
      createdAt: e.createdAt.toISOString(),
    })),
  };
}
