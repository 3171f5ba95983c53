/**
 * Read models for observability: a run's stored trace context, the pending-approval gauges of
 * `/metrics`, and the dashboard figures of `GET /v1/stats`.
 */
import { and, count, eq, gt, min, ne, sql } from 'drizzle-orm';
import { currentTraceCarrier, tracingEnabled } from '../../lib/index.js';
import { approvals, runs, stepAttempts, steps, type Db } from '../../db/index.js';

/** The W3C trace-context carrier stored with run `runId` (`undefined` when none was). */
export async function runTraceCarrier(db: Db, runId: string): Promise<Record<string, string> | undefined> {
  const [row] = await db.select({ traceContext: runs.traceContext }).from(runs).where(eq(runs.id, runId));
  return row?.traceContext ?? undefined;
}

/**
 * The trace context to store with a new run: the active span's (the `POST /v1/runs` request), or
 * for a sub-orchestration started outside any span, its parent run's, so a child run joins its
 * parent's trace. `null` when tracing is off.
 */
export async function newRunTraceCarrier(db: Db, parentRunId: string | undefined): Promise<Record<string, string> | null> {
  if (!tracingEnabled()) return null;
  return currentTraceCarrier() ?? (parentRunId ? ((await runTraceCarrier(db, parentRunId)) ?? null) : null);
}

/** Pending approvals of every organization, and the oldest one's age in seconds (0 when none). */
export async function pendingApprovalGauges(db: Db): Promise<{ pending: number; oldestAgeSeconds: number }> {
  const [row] = await db
    .select({ pending: count(), oldest: min(approvals.createdAt) })
    .from(approvals)
    .where(eq(approvals.status, 'pending'));
  const oldest = row?.oldest ? new Date(row.oldest) : undefined;
  return { pending: row?.pending ?? 0, oldestAgeSeconds: oldest ? Math.max(0, (Date.now() - oldest.getTime()) / 1000) : 0 };
}

/** p50 and p95 of a set of durations, in milliseconds. */
export interface DurationPercentiles {
  /** How many durations they are computed from. */
  count: number;
  p50Ms: number | null;
  p95Ms: number | null;
}

/** `GET /v1/stats` figures of one organization over a window ending now. */
export interface RunStats {
  /** Start and end of the window (ISO 8601). */
  from: string;
  to: string;
  /** Per definition: runs created in the window by current status, and durations of those finished in it. */
  runs: Array<{ definition: string; total: number; byStatus: Record<string, number>; duration: DurationPercentiles }>;
  /** Per agent type (step type): durations of step attempts finished in the window (cache hits excluded). */
  steps: Array<{ agentType: string; duration: DurationPercentiles }>;
  approvals: { pending: number; oldestAgeSeconds: number | null };
}

const millis = (n: unknown): number | null => (n === null || n === undefined ? null : Math.round(Number(n) * 1000) / 1000);

/**
 * Dashboard figures of organization `organizationId` over the last `windowMs` milliseconds:
 * runs by status per definition, p50/p95 run durations per definition and step-attempt
 * durations per agent type (Postgres `percentile_cont`), pending approvals and the oldest one's age.
 */
export async function runStats(db: Db, organizationId: string, windowMs: number): Promise<RunStats> {
  const to = new Date();
  const from = new Date(to.getTime() - windowMs);
  const p = (expr: ReturnType<typeof sql>, q: number) => sql<number | null>`percentile_cont(${q}) within group (order by ${expr})`;
  const runMs = sql`extract(epoch from ${runs.finishedAt} - coalesce(${runs.startedAt}, ${runs.createdAt})) * 1000`;
  const stepMs = sql`extract(epoch from ${stepAttempts.finishedAt} - ${stepAttempts.startedAt}) * 1000`;

  const [statusRows, runDurations, stepDurations, pending] = await Promise.all([
    db
      .select({ definition: runs.definitionSlug, status: runs.status, n: count() })
      .from(runs)
      .where(and(eq(runs.organizationId, organizationId), gt(runs.createdAt, from)))
      .groupBy(runs.definitionSlug, runs.status),
    db
      .select({ definition: runs.definitionSlug, n: count(), p50: p(runMs, 0.5), p95: p(runMs, 0.95) })
      .from(runs)
      .where(and(eq(runs.organizationId, organizationId), gt(runs.finishedAt, from)))
      .groupBy(runs.definitionSlug),
    db
      .select({ agentType: steps.type, n: count(), p50: p(stepMs, 0.5), p95: p(stepMs, 0.95) })
      .from(stepAttempts)
      .innerJoin(steps, and(eq(steps.runId, stepAttempts.runId), eq(steps.stepId, stepAttempts.stepId)))
      .innerJoin(runs, eq(runs.id, stepAttempts.runId))
      .where(
        and(
          eq(runs.organizationId, organizationId),
          gt(stepAttempts.finishedAt, from),
          eq(stepAttempts.cacheHit, false),
          ne(steps.type, 'checkpoint'),
        ),
      )
      .groupBy(steps.type),
    db
      .select({ pending: count(), oldest: min(approvals.createdAt) })
      .from(approvals)
      .where(and(eq(approvals.organizationId, organizationId), eq(approvals.status, 'pending'))),
  ]);

  const byDefinition = new Map<string, RunStats['runs'][number]>();
  const entry = (definition: string) => {
    let e = byDefinition.get(definition);
    if (!e) {
      e = { definition, total: 0, byStatus: {}, duration: { count: 0, p50Ms: null, p95Ms: null } };
      byDefinition.set(definition, e);
    }
    return e;
  };
  for (const r of statusRows) {
    const e = entry(r.definition);
    e.byStatus[r.status] = r.n;
    e.total += r.n;
  }
  for (const r of runDurations) entry(r.definition).duration = { count: r.n, p50Ms: millis(r.p50), p95Ms: millis(r.p95) };
  const oldest = pending[0]?.oldest ? new Date(pending[0].oldest) : undefined;
  return {
    from: from.toISOString(),
    to: to.toISOString(),
    runs: [...byDefinition.values()].sort((a, b) => a.definition.localeCompare(b.definition)),
    steps: stepDurations
      .map((r) => ({ agentType: r.agentType, duration: { count: r.n, p50Ms: millis(r.p50), p95Ms: millis(r.p95) } }))
      .sort((a, b) => a.agentType.localeCompare(b.agentType)),
    approvals: {
      pending: pending[0]?.pending ?? 0,
      oldestAgeSeconds: oldest ? Math.max(0, Math.round((to.getTime() - oldest.getTime()) / 100) / 10) : null,
    },
  };
}
