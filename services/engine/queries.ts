/** Read models for the API: runs, their events, approvals. Always scoped to an organization. */
import { and, asc, desc, eq, gt, sql } from 'drizzle-orm';
import { NotFoundError, ValidationError } from '../../lib/index.js';
import { approvals, runEvents, runs, steps } from '../../db/index.js';
import { approvalResponsesOf, approvalSummary, type ApprovalRow } from './checkpoints.js';
import { definitionById } from './definitions-store.js';
import type { EngineDeps } from './deps.js';

const iso = (d: Date | null) => d?.toISOString() ?? null;

/** Public view of a run (`GET /v1/runs/:id`). */
export async function getRunView(deps: EngineDeps, organizationId: string, runId: string): Promise<Record<string, unknown>> {
  const { db } = deps.database;
  const [run] = await db
    .select()
    .from(runs)
    .where(and(eq(runs.id, runId), eq(runs.organizationId, organizationId)));
  if (!run) throw new NotFoundError(`run ${runId} not found`);
  const { spec } = await definitionById(db, run.definitionId);
  const order = new Map(spec.steps.map((s, i) => [s.id, i]));
  // Steps in the order the definition lists them.
  const stepRows = (await db.select().from(steps).where(eq(steps.runId, runId))).sort(
    (a, b) => (order.get(a.stepId) ?? 0) - (order.get(b.stepId) ?? 0),
  );
  const approvalRows = await db.select().from(approvals).where(eq(approvals.runId, runId)).orderBy(asc(approvals.createdAt));
  return {
    id: run.id,
    definition: run.definitionSlug,
    version: run.definitionVersion,
    status: run.status,
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
      queuedAt: iso(s.queuedAt),
      startedAt: iso(s.startedAt),
      finishedAt: iso(s.finishedAt),
    })),
    approvals: await withResponses(deps, approvalRows),
  };
}

/** Approvals (every attempt) with every response: who, when, how, comment, modifications. */
async function withResponses(deps: EngineDeps, rows: ApprovalRow[]): Promise<Array<Record<string, unknown>>> {
  const responses = await approvalResponsesOf(deps, rows.map((r) => r.id));
  return rows.map((r) => ({ ...approvalSummary(r), responses: responses.get(r.id) ?? [] }));
}

/** Run status only (used by the SSE stream). */
export async function runStatus(deps: EngineDeps, organizationId: string, runId: string): Promise<string> {
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
export async function listEvents(deps: EngineDeps, runId: string, afterSeq = 0, limit = 1000): Promise<RunEventView[]> {
  const rows = await deps.database.db
    .select()
    .from(runEvents)
    .where(and(eq(runEvents.runId, runId), gt(runEvents.seq, afterSeq)))
    .orderBy(asc(runEvents.seq))
    .limit(limit);
  return rows.map((e) => ({ seq: e.seq, type: e.type, stepId: e.stepId, data: e.data, createdAt: e.createdAt.toISOString() }));
}

/** One event by sequence number. */
export async function getEvent(deps: EngineDeps, runId: string, seq: number) {
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
  deps: EngineDeps,
  organizationId: string,
  options: { status?: string; limit?: number; cursor?: string },
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
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map((r) => ({ ...approvalSummary(r.approval), ageMs: Math.round(r.ageMs) })),
    nextCursor: rows.length > limit && last ? encodeCursor(last.approval.id) : null,
  };
}
