/**
 * Manual intervention (SPEC R5): cancel a run, retry a step (optionally with new input), skip a
 * step (optionally with an output), resume a failed run. Each is one transaction under the run's
 * lock, audited as an event naming who did it, and refused with 409 when the run's state does not
 * allow it. Jobs are touched only after the commit:
 * - waiting, delayed or parked jobs are removed (with their children);
 * - active jobs get their AbortSignal through a cancel message on Redis pub/sub, which every
 *   worker process hears; if a worker misses it, the job's later result is fenced out anyway
 *   (its step is no longer running, or its generation is stale).
 * A finished (failed) run that is reopened gets a new root job (`<runId>.r<n>`), because a
 * finished root cannot take children.
 */
import { and, eq, inArray, sql } from 'drizzle-orm';
import { ConflictError, NotFoundError } from '../../lib/index.js';
import { approvals, runs, stepAttempts, stepItems, steps } from '../../db/index.js';
import { descendantsOf } from '../../definitions/index.js';
import { queueForStepType, rootJobId, stepJobId, type QueueName, type StepJobSpec, type StepType } from '../../queues/index.js';
import { advance, loadSteps, type StepRow } from './advance.js';
import { engineFailure, isRunInProgress, isStepLive } from './statuses.js';
import { releaseSlot, startAdmitted } from './concurrency.js';
import { definitionById } from '../store/index.js';
import type { EngineDeps } from './deps.js';
import { withRun, type RunScope } from './run-scope.js';

/** Who intervenes. */
export interface Actor {
  organizationId: string;
  /** API key subject, recorded in the event. */
  subject: string;
}

/** A job to stop after the commit. */
interface JobRef {
  id: string;
  type: StepType | 'item';
  queue: QueueName;
}

/** Outcome of an intervention. */
export interface InterventionResult {
  runId: string;
  status: string;
}

function assertOrg(scope: RunScope, actor: Actor): void {
  if (scope.run.organizationId !== actor.organizationId) throw new NotFoundError(`run ${scope.run.id} not found`);
}

function findStep(rows: StepRow[], stepId: string): StepRow {
  const row = rows.find((r) => r.stepId === stepId);
  if (!row) throw new NotFoundError(`step ${stepId} not found`, { field: 'stepId' });
  return row;
}

/** Jobs of live steps (and of their fan-out items) of `rows`. */
async function liveJobs(scope: RunScope, rows: StepRow[]): Promise<JobRef[]> {
  const live = rows.filter((r) => isStepLive(r.status));
  const jobs: JobRef[] = live.map((r) => ({
    id: stepJobId(r.runId, r.stepId, r.generation),
    type: r.type as StepType,
    queue: queueForStepType(r.type as StepType),
  }));
  if (live.length > 0) {
    const items = await scope.tx
      .select()
      .from(stepItems)
      .where(and(eq(stepItems.runId, scope.run.id), inArray(stepItems.status, ['queued', 'running'])));
    for (const item of items) {
      const step = live.find((r) => r.stepId === item.stepId && r.generation === item.generation);
      if (!step) continue;
      jobs.push({
        id: `${stepJobId(item.runId, item.stepId, item.generation)}.i${item.idx}`,
        type: 'item',
        queue: queueForStepType(step.type as StepType),
      });
    }
  }
  return jobs;
}

/**
 * Stop jobs: remove the ones not running (a removed child releases its parent), and broadcast a
 * cancel for the active ones.
 */
export async function stopJobs(deps: EngineDeps, jobs: JobRef[], reason: string): Promise<void> {
  await deps.queues.stopJobs(jobs, reason);
}

/**
 * Cancel a throttled, queued or running run: its unfinished steps, fan-out items and pending
 * approvals are cancelled, running jobs receive their AbortSignal, waiting jobs are removed, and
 * child runs (sub-orchestrations) are cancelled too. A run cancelled outright gives its
 * concurrency slot to the next throttled run of its group (`concurrency.ts`).
 * @throws {NotFoundError} unknown run (or another organization's).
 * @throws {ConflictError} the run is already finished.
 */
export async function cancelRun(deps: EngineDeps, actor: Actor, runId: string, reason?: string): Promise<InterventionResult> {
  const message = reason ?? `cancelled by ${actor.subject}`;
  await deps.queues.ensureAvailable(); // Redis first: while it is down, nothing changes (503)
  const out = await withRun(deps, runId, async (scope) => {
    assertOrg(scope, actor);
    const { tx, run } = scope;
    if (run.status !== 'queued' && run.status !== 'running' && run.status !== 'throttled') {
      throw new ConflictError(`run is ${run.status}; only throttled, queued or running runs can be cancelled`);
    }
    const heldSlot = isRunInProgress(run.status);
    const rows = await loadSteps(scope);
    const jobs = await liveJobs(scope, rows);
    const open = rows.filter((r) => ['pending', 'queued', 'running', 'waiting'].includes(r.status));
    const error = engineFailure('CANCELLED', 'RunCancelled', message);
    if (open.length > 0) {
      await tx
        .update(steps)
        .set({ status: 'cancelled', finishedAt: sql`now()` })
        .where(and(eq(steps.runId, runId), inArray(steps.stepId, open.map((r) => r.stepId))));
    }
    await tx
      .update(stepAttempts)
      .set({ status: 'cancelled', finishedAt: sql`now()`, error })
      .where(and(eq(stepAttempts.runId, runId), eq(stepAttempts.status, 'running')));
    await tx
      .update(stepItems)
      .set({ status: 'cancelled', finishedAt: sql`now()` })
      .where(and(eq(stepItems.runId, runId), inArray(stepItems.status, ['pending', 'queued', 'running'])));
    await tx
      .update(approvals)
      .set({ status: 'cancelled', decidedBy: actor.subject, decidedAt: sql`now()` })
      .where(and(eq(approvals.runId, runId), eq(approvals.status, 'pending')));
    // With compensations to run (D9) the run is `cancelling` until they have; the root finishes it.
    const { spec: definition } = await definitionById(tx, run.definitionId);
    const byId = new Map(rows.map((r) => [r.stepId, r]));
    const compensate = definition.steps.some((s) => s.compensate && byId.get(s.id)?.status === 'completed');
    const status = compensate ? 'cancelling' : 'cancelled';
    await tx
      .update(runs)
      .set({ status, error, startedAt: sql`coalesce(${runs.startedAt}, now())`, ...(compensate ? {} : { finishedAt: sql`now()` }) })
      .where(eq(runs.id, runId));
    run.status = status;
    for (const r of open) await scope.emit('step.cancelled', r.stepId, { reason: message, by: actor.subject });
    await scope.emit(compensate ? 'run.cancelling' : 'run.cancelled', null, { error, by: actor.subject });
    const children = await tx
      .select({ id: runs.id })
      .from(runs)
      .where(and(eq(runs.parentRunId, runId), inArray(runs.status, ['queued', 'running'])));
    // Cancelled outright, the run leaves its concurrency group: the next throttled run starts.
    const admitted = status === 'cancelled' && heldSlot ? await releaseSlot(tx, run) : [];
    return { jobs, children: children.map((c) => c.id), status, rootId: rootJobId(run.id, run.rootGeneration), admitted };
  });
  await startAdmitted(deps, out.admitted);
  await stopJobs(deps, out.jobs, message);
  for (const child of out.children) {
    await cancelRun(deps, actor, child, `parent run ${runId} was cancelled`).catch((err: unknown) => {
      if (!(err instanceof ConflictError)) throw err;
    });
  }
  return { runId, status: out.status };
}

/** Put steps back to `pending` with a new generation (fencing results of the old one). */
async function resetSteps(scope: RunScope, rows: StepRow[], ids: Set<string>, data: Record<string, unknown>): Promise<void> {
  for (const row of rows) {
    if (!ids.has(row.stepId)) continue;
    row.status = 'pending';
    row.generation += 1;
    await scope.tx
      .update(steps)
      .set({ status: 'pending', generation: row.generation, error: null, finishedAt: null, inputOverride: null })
      .where(and(eq(steps.runId, row.runId), eq(steps.stepId, row.stepId)));
    await scope.emit('step.retrying', row.stepId, { generation: row.generation, ...data });
  }
}

/**
 * Reopen a finished run in the current transaction: status `running`, a new root generation, and
 * steps cancelled only because the run ended back to `pending`.
 */
async function reopen(scope: RunScope, rows: StepRow[], by: string, why: string): Promise<void> {
  const { tx, run } = scope;
  const cancelled = rows.filter((r) => r.status === 'cancelled');
  for (const r of cancelled) {
    r.status = 'pending';
    await tx
      .update(steps)
      .set({ status: 'pending', finishedAt: null })
      .where(and(eq(steps.runId, r.runId), eq(steps.stepId, r.stepId)));
  }
  run.rootGeneration += 1;
  run.status = 'running';
  await tx
    .update(runs)
    .set({ status: 'running', rootGeneration: run.rootGeneration, error: null, output: null, finishedAt: null })
    .where(eq(runs.id, run.id));
  await scope.emit('run.resumed', null, { by, reason: why, rootGeneration: run.rootGeneration });
}

interface Reopened {
  rootId: string;
  reopened: boolean;
  ready: StepJobSpec[];
  stop: JobRef[];
}

async function addJobs(deps: EngineDeps, runId: string, out: Reopened): Promise<void> {
  if (out.stop.length > 0) await stopJobs(deps, out.stop, 'superseded by a manual intervention');
  if (out.reopened) await deps.queues.addRunFlow(out.rootId, runId, out.ready);
  else await deps.queues.addStepJobs(out.rootId, runId, out.ready);
}

/**
 * Re-run a failed or completed step — with `input` instead of its mapping when given — and,
 * after it, every step downstream of it. Other steps keep their outputs. A failed run is reopened.
 * @throws {ConflictError} the step is not failed/completed, or the run is cancelled or queued.
 */
export async function retryStep(
  deps: EngineDeps,
  actor: Actor,
  runId: string,
  stepId: string,
  input?: unknown,
): Promise<InterventionResult & { generation: number }> {
  let generation = 0;
  await deps.queues.ensureAvailable(); // Redis first: while it is down, nothing changes (503)
  const out = await withRun(deps, runId, async (scope): Promise<Reopened> => {
    assertOrg(scope, actor);
    const { run } = scope;
    if (!['running', 'failed', 'completed'].includes(run.status)) throw new ConflictError(`run is ${run.status}; a step can be retried only in a running, failed or completed run`);
    const { spec: definition } = await definitionById(scope.tx, run.definitionId);
    const rows = await loadSteps(scope);
    const target = findStep(rows, stepId);
    if (target.status !== 'failed' && target.status !== 'completed') {
      throw new ConflictError(`step ${stepId} is ${target.status}; only a failed or completed step can be retried`);
    }
    const reset = new Set([stepId, ...descendantsOf(definition, stepId)]);
    const stop = await liveJobs(scope, rows.filter((r) => reset.has(r.stepId)));
    const reopened = run.status !== 'running';
    if (reopened) await reopen(scope, rows, actor.subject, `step ${stepId} retried`);
    await resetSteps(scope, rows, reset, { reason: `retried by ${actor.subject}`, by: actor.subject, manual: true });
    if (input !== undefined) {
      await scope.tx.update(steps).set({ inputOverride: input }).where(and(eq(steps.runId, runId), eq(steps.stepId, stepId)));
    }
    generation = target.generation;
    return { rootId: rootJobId(run.id, run.rootGeneration), reopened, ready: await advance(scope, definition, rows), stop };
  });
  await addJobs(deps, runId, out);
  return { runId, status: 'running', generation };
}

/**
 * Skip a step that has not completed, recording `output` (default null) as its output so that
 * its dependents run. A failed run is reopened.
 * @throws {ConflictError} the step is already completed or skipped, or the run is finished otherwise.
 */
export async function skipStep(deps: EngineDeps, actor: Actor, runId: string, stepId: string, output?: unknown): Promise<InterventionResult> {
  await deps.queues.ensureAvailable(); // Redis first: while it is down, nothing changes (503)
  const out = await withRun(deps, runId, async (scope): Promise<Reopened> => {
    assertOrg(scope, actor);
    const { run, tx } = scope;
    if (run.status !== 'queued' && run.status !== 'running' && run.status !== 'failed') {
      throw new ConflictError(`run is ${run.status}; a step can be skipped only in a queued, running or failed run`);
    }
    const { spec: definition } = await definitionById(tx, run.definitionId);
    const rows = await loadSteps(scope);
    const target = findStep(rows, stepId);
    if (target.status === 'completed' || target.status === 'skipped') throw new ConflictError(`step ${stepId} is already ${target.status}`);
    const stop = await liveJobs(scope, [target]);
    const reopened = run.status === 'failed';
    if (reopened) await reopen(scope, rows, actor.subject, `step ${stepId} skipped`);
    // A new generation fences any result its current job may still report.
    target.generation += 1;
    target.status = 'completed';
    target.output = output ?? null;
    await tx
      .update(steps)
      .set({ status: 'completed', output: output ?? null, error: null, generation: target.generation, finishedAt: sql`now()` })
      .where(and(eq(steps.runId, runId), eq(steps.stepId, stepId)));
    await tx
      .update(approvals)
      .set({ status: 'cancelled', decidedBy: actor.subject, decidedAt: sql`now()` })
      .where(and(eq(approvals.runId, runId), eq(approvals.stepId, stepId), eq(approvals.status, 'pending')));
    await scope.emit('step.skipped', stepId, { manual: true, by: actor.subject, output: output ?? null });
    return { rootId: rootJobId(run.id, run.rootGeneration), reopened, ready: await advance(scope, definition, rows), stop };
  });
  await addJobs(deps, runId, out);
  return { runId, status: 'running' };
}

/**
 * Resume a failed run from where it failed: failed steps run again (new generation), steps that
 * never ran because of the failure are pending again; completed steps keep their outputs.
 * @throws {ConflictError} the run is not failed.
 */
export async function resumeRun(deps: EngineDeps, actor: Actor, runId: string): Promise<InterventionResult> {
  await deps.queues.ensureAvailable(); // Redis first: while it is down, nothing changes (503)
  const out = await withRun(deps, runId, async (scope): Promise<Reopened> => {
    assertOrg(scope, actor);
    const { run } = scope;
    if (run.status !== 'failed') throw new ConflictError(`run is ${run.status}; only a failed run can be resumed`);
    const { spec: definition } = await definitionById(scope.tx, run.definitionId);
    const rows = await loadSteps(scope);
    const failed = new Set(rows.filter((r) => r.status === 'failed').map((r) => r.stepId));
    await reopen(scope, rows, actor.subject, 'resumed');
    await resetSteps(scope, rows, failed, { reason: `resumed by ${actor.subject}`, by: actor.subject, manual: true });
    return { rootId: rootJobId(run.id, run.rootGeneration), reopened: true, ready: await advance(scope, definition, rows), stop: [] };
  });
  await addJobs(deps, runId, out);
  return { runId, status: 'running' };
}
