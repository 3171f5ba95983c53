/**
 * Reconciliation (SPEC R4): Postgres is the truth, Redis holds the work still to do. For every
 * unfinished run, re-create from Postgres each job that should exist and does not — after a
 * crash between a commit and a Redis write, or after Redis lost data (even the whole prefix).
 *
 * Used by the root job before it waits again (its own run) and by the periodic `reconcile` job
 * scheduler and `npm run reconcile` (every unfinished run).
 */
import { and, eq, inArray } from 'drizzle-orm';
import { approvals, runs } from '../../db/index.js';
import { queueForStepType, rootJobId, stepJobId, type StepJobSpec } from '../../queues/index.js';
import { advance, liveJobSpecs, loadSteps } from './advance.js';
import { promoteParked } from './checkpoints.js';
import { definitionById } from './definitions-store.js';
import type { EngineDeps } from './deps.js';
import { withRun } from './run-scope.js';
import { failOrphanedStep } from './steps.js';
import { sweepWebhookOutbox } from './webhooks.js';

/** What a reconciliation did. */
export interface ReconcileReport {
  runs: number;
  /** Root jobs re-created (with their live steps as children). */
  rootsCreated: number;
  /** Step jobs re-added under an existing root. */
  jobsAdded: number;
  /** Steps whose job BullMQ had failed without our processor recording it. */
  orphansFailed: number;
  /** Decided checkpoints whose parked job was woken. */
  promoted: number;
  /** Webhook deliveries re-enqueued from the outbox (events not delivered and without a job). */
  webhooksRequeued: number;
}

const emptyReport = (): ReconcileReport => ({ runs: 0, rootsCreated: 0, jobsAdded: 0, orphansFailed: 0, promoted: 0, webhooksRequeued: 0 });

/**
 * Make sure each live step has its job under root `rootId`. A job BullMQ already failed without
 * our processor recording it (e.g. stalled too often) fails its step in Postgres; a job that
 * completed although Postgres says the step is unfinished is replaced (the attempt fence keeps
 * the step from recording twice).
 */
export async function ensureStepJobs(
  deps: EngineDeps,
  rootId: string,
  runId: string,
  specs: StepJobSpec[],
  report: ReconcileReport = emptyReport(),
): Promise<ReconcileReport> {
  for (const spec of specs) {
    const id = stepJobId(runId, spec.stepId, spec.generation);
    const existing = await deps.queues.get(queueForStepType(spec.type)).getJob(id);
    if (!existing) {
      deps.logger.warn({ runId, jobId: id }, 'step job missing; re-adding it');
      await deps.queues.addStepJobs(rootId, runId, [spec]);
      report.jobsAdded += 1;
      continue;
    }
    const state = await existing.getState();
    if (state === 'failed') {
      await failOrphanedStep(deps, { runId, ...spec }, existing.failedReason || 'job failed');
      report.orphansFailed += 1;
    } else if (state === 'completed') {
      deps.logger.warn({ runId, jobId: id }, 'step job completed without recording; re-adding it');
      await existing.remove();
      await deps.queues.addStepJobs(rootId, runId, [spec]);
      report.jobsAdded += 1;
    }
  }
  return report;
}

/** Reconcile one run (see module doc). Finished runs are left alone. */
export async function reconcileRun(deps: EngineDeps, runId: string, report: ReconcileReport = emptyReport()): Promise<ReconcileReport> {
  const state = await withRun(deps, runId, async (scope) => {
    const { run } = scope;
    if (run.status !== 'queued' && run.status !== 'running' && run.status !== 'cancelling') return undefined;
    const { spec: definition } = await definitionById(scope.tx, run.definitionId);
    const rows = await loadSteps(scope);
    await advance(scope, definition, rows);
    const decided = await scope.tx
      .select({ jobId: approvals.jobId })
      .from(approvals)
      .where(and(eq(approvals.runId, runId), inArray(approvals.status, ['decided'])));
    const waitingJobs = new Set(rows.filter((r) => r.status === 'waiting').map((r) => stepJobId(runId, r.stepId, r.generation)));
    return {
      rootId: rootJobId(run.id, run.rootGeneration),
      live: liveJobSpecs(definition, rows),
      promote: decided.map((d) => d.jobId).filter((id) => waitingJobs.has(id)),
      // A child run's root belongs under its parent's orchestrator step job (its idempotency key).
      parentJobId: run.parentRunId && run.idempotencyKey ? run.idempotencyKey : undefined,
    };
  });
  if (!state) return report;
  report.runs += 1;
  const root = await deps.queues.get('runs').getJob(state.rootId);
  const rootState = root ? await root.getState() : 'missing';
  if (rootState === 'missing' || rootState === 'failed' || rootState === 'completed') {
    // No root (Redis lost it) or a dead one for a live run: build the flow again from Postgres.
    if (root) await root.remove();
    deps.logger.warn({ runId, rootJobId: state.rootId, rootState }, 'run root job missing; re-creating the flow');
    const parentJob = state.parentJobId ? await deps.queues.get('agent-orchestrator').getJob(state.parentJobId) : undefined;
    const parent = parentJob?.id ? { id: parentJob.id, queue: deps.queues.qualifiedName('agent-orchestrator') } : undefined;
    await deps.queues.addRunFlow(state.rootId, runId, state.live, parent);
    report.rootsCreated += 1;
  } else {
    await ensureStepJobs(deps, state.rootId, runId, state.live, report);
  }
  for (const jobId of state.promote) {
    await promoteParked(deps, jobId);
    report.promoted += 1;
  }
  return report;
}

/**
 * Reconcile every unfinished run, oldest first, one at a time; then sweep the webhook outbox.
 * @param options.limit - at most this many runs per call.
 * @param options.webhookGraceMs - leave events younger than this to their first delivery.
 */
export async function reconcileAll(deps: EngineDeps, options: { limit?: number; webhookGraceMs?: number } = {}): Promise<ReconcileReport> {
  const limit = options.limit ?? 10_000;
  const open = await deps.database.db
    .select({ id: runs.id })
    .from(runs)
    .where(inArray(runs.status, ['queued', 'running', 'cancelling']))
    .orderBy(runs.createdAt)
    .limit(limit);
  const report = emptyReport();
  for (const { id } of open) {
    try {
      await reconcileRun(deps, id, report);
    } catch (err) {
      deps.logger.error({ err, runId: id }, 'reconcile failed for run');
    }
  }
  try {
    report.webhooksRequeued = await sweepWebhookOutbox(deps, options.webhookGraceMs);
  } catch (err) {
    deps.logger.error({ err }, 'webhook outbox sweep failed');
  }
  return report;
}
