/**
 * Reconciliation (SPEC R4): Postgres is the truth, Redis holds the work still to do.
 *
 * ## The invariant
 *
 * For every unfinished run (`queued`, `running`, `cancelling`):
 *
 * 1. **A run with a live step always has a live job.** Every step in `queued`, `running` or
 *    `waiting` has its job (`<run>.<step>.<generation>`), with a valid payload, in a live BullMQ
 *    state (`wait`, `active`, `delayed`, `prioritized`, `waiting-children`), as a child of the
 *    run's root job, which exists and is itself live.
 * 2. **Every job a parent waits for is live.** Each member of a parent's `dependencies` set (root
 *    → step jobs; fan-out step → item jobs; orchestrator step → child run root) is a job in a live
 *    state with a valid payload. A dependency that is missing, in no state, without data, or
 *    failed (BullMQ lists a failed child both as ignored and as unprocessed when it was re-added:
 *    issue 13 D) would hold its parent in `waiting-children` forever.
 * 3. **A parent with nothing left to wait for is not waiting.** A root or parent step in
 *    `waiting-children` with an empty `dependencies` set (bullmq#3235) is woken, so it re-checks
 *    Postgres: a run whose steps are all settled always finalizes; a fan-out or sub-run step
 *    whose children are all settled always records its outcome.
 *
 * ## The repairs
 *
 * - missing root, or a dead one (failed, completed, in no state, no data): removed (never its
 *   children) and the flow re-created from Postgres with the live steps as children; a child
 *   run's root goes back under its parent's orchestrator step job when that job exists;
 * - a dead dependency: a missing job is re-added under the same id (from Postgres, so with its
 *   data; a settled step or item completes at once, releasing the parent); a job in no state,
 *   without data or failed is removed, then re-added when Postgres says it is live;
 * - a live step whose job failed without our processor recording it (e.g. stalled too often):
 *   re-added, up to {@link ORPHAN_REQUEUE_LIMIT} attempts beyond the step's policy, then failed;
 * - a parent with nothing pending: a no-op `nudge` child wakes it;
 * - a decided checkpoint still parked: promoted;
 * - a concurrency group with free slots and throttled runs: the oldest are admitted
 *   (`concurrency.ts`); an admitted (`queued`) run whose flow was never created gets it as a
 *   missing root above.
 *
 * A child run whose parent step job is gone gets its root without a parent; the parent run's own
 * reconciliation re-creates the step job, which then follows the child from Postgres (it re-checks
 * every second while no child job is attached).
 *
 * Used by the root job before it waits again (its own run), by the periodic `reconcile` job
 * scheduler and by `npm run reconcile` (every unfinished run).
 */
import { and, eq, inArray } from 'drizzle-orm';
import { z } from 'zod';
import { approvals, runs, steps } from '../../db/index.js';
import type { Definition } from '../../definitions/index.js';
import {
  NUDGE_JOB,
  RunJobData,
  StepJobData,
  queueForStepType,
  rootJobId,
  stepJobId,
  type ChildRef,
  type JobInspection,
  type QueueName,
  type StepJobSpec,
} from '../../queues/index.js';
import { advance, jobSpecFor, liveJobSpecs, loadSteps } from './advance.js';
import { promoteParked } from './checkpoints.js';
import { definitionById } from '../store/index.js';
import type { EngineDeps } from './deps.js';
import { itemsOf } from './fanout.js';
import { withRun } from './run-scope.js';
import { failOrphanedStep } from './steps.js';
import { isStepLive } from './statuses.js';
import { sweepWebhookOutbox } from './webhooks.js';
import { admitAllThrottled } from './concurrency.js';

/** Re-adds of a live step whose job BullMQ failed unrecorded, beyond its own `retry.attempts`. */
export const ORPHAN_REQUEUE_LIMIT = 10;

/** What a reconciliation did. */
export interface ReconcileReport {
  runs: number;
  /** Root jobs re-created (with their live steps as children). */
  rootsCreated: number;
  /** Step and item jobs (re-)added. */
  jobsAdded: number;
  /** Dead dependencies removed (in no state, without data, or failed but still pending). */
  deadJobsRemoved: number;
  /** Parents woken because they waited for nothing. */
  parentsNudged: number;
  /** Steps whose job BullMQ had failed without our processor recording it, past the limit. */
  orphansFailed: number;
  /** Decided checkpoints whose parked job was woken. */
  promoted: number;
  /** Webhook deliveries re-enqueued from the outbox (events not delivered and without a job). */
  webhooksRequeued: number;
  /** Throttled runs admitted because their concurrency group had free slots (a missed release). */
  throttledAdmitted: number;
}

const emptyReport = (): ReconcileReport => ({
  runs: 0,
  rootsCreated: 0,
  jobsAdded: 0,
  deadJobsRemoved: 0,
  parentsNudged: 0,
  orphansFailed: 0,
  promoted: 0,
  webhooksRequeued: 0,
  throttledAdmitted: 0,
});

/** BullMQ states in which a job will still run or complete. */
const LIVE_JOB_STATES: ReadonlySet<string> = new Set(['waiting', 'wait', 'active', 'delayed', 'prioritized', 'waiting-children']);

const ItemPayload = StepJobData.extend({ index: z.number().int().nonnegative() });

/** Whether a job's payload is what its processor expects. */
function payloadValid(job: JobInspection): boolean {
  if (job.name === NUDGE_JOB) return true;
  if (job.queue === 'runs') return RunJobData.safeParse(job.data).success;
  if (job.name === 'item') return ItemPayload.safeParse(job.data).success;
  return StepJobData.safeParse(job.data).success;
}

/** A dependency that can never release its parent (see the invariant). */
function isDead(job: JobInspection): boolean {
  return job.state === 'unknown' || job.state === 'failed' || (job.state !== 'missing' && !payloadValid(job));
}

/** Step id and generation of step job id `<run>.<step>.<generation>` of run `runId`. */
function parseStepJobId(runId: string, id: string): { stepId: string; generation: number } | undefined {
  const match = new RegExp(`^${runId}\\.(.+)\\.(\\d+)$`).exec(id);
  return match?.[1] && match[2] ? { stepId: match[1], generation: Number(match[2]) } : undefined;
}

/** Steps' job options at their current generation, for every step of the definition. */
function stepSpecsOf(definition: Definition): Map<string, StepJobSpec> {
  return new Map(definition.steps.map((s) => [s.id, jobSpecFor(s, 1)]));
}

/**
 * Whether a step is still live at `generation`, read after its job was seen missing or
 * completed. The caller's list of live steps was read before it looked in Redis, and a step
 * can finish in between: its completion commits before its job completes (and, with
 * `JOBS_KEEP_COMPLETED=0`, leaves Redis), so a job seen gone whose step this read finds live
 * was really lost — never one that just finished (re-adding that would hang a fresh child
 * under a root that is finalizing).
 */
async function stillLive(deps: EngineDeps, runId: string, stepId: string, generation: number): Promise<boolean> {
  const [row] = await deps.database.db
    .select({ status: steps.status, generation: steps.generation })
    .from(steps)
    .where(and(eq(steps.runId, runId), eq(steps.stepId, stepId)));
  return row !== undefined && row.generation === generation && isStepLive(row.status);
}

/** A live step whose job failed unrecorded: re-add it, or fail it past the limit. */
async function requeueOrphan(deps: EngineDeps, rootId: string, runId: string, spec: StepJobSpec, job: JobInspection, report: ReconcileReport): Promise<void> {
  const [row] = await deps.database.db
    .select({ attempts: steps.attempts })
    .from(steps)
    .where(and(eq(steps.runId, runId), eq(steps.stepId, spec.stepId)));
  if ((row?.attempts ?? 0) >= spec.attempts + ORPHAN_REQUEUE_LIMIT) {
    await failOrphanedStep(deps, { runId, ...spec }, job.failedReason ?? 'job failed');
    report.orphansFailed += 1;
    return;
  }
  deps.logger.warn({ runId, jobId: job.id, failedReason: job.failedReason }, 'step job failed without recording; re-adding it');
  if (!(await deps.queues.removeJob(job.queue, job.id))) return;
  report.deadJobsRemoved += 1;
  await deps.queues.addStepJobs(rootId, runId, [spec]);
  report.jobsAdded += 1;
}

/**
 * Make sure each live step has a live job under root `rootId` (invariant 1), and that live parent
 * steps (fan-out, sub-run) have live children (invariant 2). A job that completed although
 * Postgres says the step is unfinished is replaced (the attempt fence keeps the step from
 * recording twice); one in no state or without data is replaced; one BullMQ failed without our
 * processor recording it is re-added (see {@link ORPHAN_REQUEUE_LIMIT}).
 */
export async function ensureStepJobs(
  deps: EngineDeps,
  rootId: string,
  runId: string,
  specs: StepJobSpec[],
  report: ReconcileReport = emptyReport(),
): Promise<ReconcileReport> {
  for (const spec of specs) {
    const queue = queueForStepType(spec.type);
    const id = stepJobId(runId, spec.stepId, spec.generation);
    const job = await deps.queues.inspectJob(queue, id);
    if ((job.state === 'missing' || job.state === 'completed') && !(await stillLive(deps, runId, spec.stepId, spec.generation))) continue;
    if (job.state === 'missing') {
      deps.logger.warn({ runId, jobId: id }, 'step job missing; re-adding it');
      await deps.queues.addStepJobs(rootId, runId, [spec]);
      report.jobsAdded += 1;
    } else if (job.state === 'failed') {
      await requeueOrphan(deps, rootId, runId, spec, job, report);
    } else if (job.state === 'completed' || isDead(job)) {
      deps.logger.warn({ runId, jobId: id, state: job.state }, 'step job dead although the step is live; replacing it');
      if (!(await deps.queues.removeJob(queue, id))) continue;
      report.deadJobsRemoved += 1;
      await deps.queues.addStepJobs(rootId, runId, [spec]);
      report.jobsAdded += 1;
    } else if (job.state === 'waiting-children') {
      await repairParentStep(deps, runId, spec, report);
    }
  }
  return report;
}

/** A live fan-out or sub-run step job in `waiting-children`: its children must be live (2, 3). */
async function repairParentStep(deps: EngineDeps, runId: string, spec: StepJobSpec, report: ReconcileReport): Promise<void> {
  const queue = queueForStepType(spec.type);
  const parentId = stepJobId(runId, spec.stepId, spec.generation);
  const items = new Map((await itemsOf(deps, runId, spec.stepId, spec.generation)).map((i) => [i.idx, i]));
  for (const child of await deps.queues.pendingChildren(queue, parentId)) {
    const job = await deps.queues.inspectJob(child.queue, child.id);
    if (child.queue === 'runs') {
      // A child run's root: a dead one goes; the child run's own reconciliation re-creates it.
      if (isDead(job) && (await deps.queues.removeJob(child.queue, child.id))) report.deadJobsRemoved += 1;
      if (job.state === 'missing' || isDead(job)) await reconcileChildRoot(deps, child, parentId, queue, report);
      continue;
    }
    const index = /\.i(\d+)$/.exec(child.id)?.[1];
    if (index === undefined || (job.state !== 'missing' && !isDead(job))) continue;
    const item = items.get(Number(index));
    const live = item !== undefined && (item.status === 'queued' || item.status === 'running' || item.status === 'pending');
    if (job.state !== 'missing') {
      deps.logger.warn({ runId, jobId: child.id, state: job.state }, 'fan-out item job dead; removing it');
      if (!(await deps.queues.removeJob(child.queue, child.id))) continue;
      report.deadJobsRemoved += 1;
      if (!live) continue;
    }
    // Missing (or just removed and still live): re-add it. A settled item's job completes at once.
    await deps.queues.addItemJobs(parentId, { ...spec, runId }, [Number(index)]);
    report.jobsAdded += 1;
  }
  await nudgeIfIdle(deps, queue, parentId, report);
}

/** Re-create a sub-run's root under its parent step job (finished child runs: a no-op root). */
async function reconcileChildRoot(deps: EngineDeps, child: ChildRef, parentId: string, parentQueue: QueueName, report: ReconcileReport): Promise<void> {
  const runId = child.id.replace(/\.r\d+$/, '');
  const [run] = await deps.database.db.select({ status: runs.status }).from(runs).where(eq(runs.id, runId));
  if (!run) return;
  if (run.status === 'queued' || run.status === 'running' || run.status === 'cancelling') {
    await reconcileRun(deps, runId, report);
    return;
  }
  // Finished: a root without children completes at once and releases the parent step.
  await deps.queues.addRunFlow(child.id, runId, [], { id: parentId, queue: deps.queues.qualifiedName(parentQueue) });
  report.rootsCreated += 1;
}

/** Invariant 3: wake a parent in `waiting-children` that has nothing left to wait for. */
async function nudgeIfIdle(deps: EngineDeps, queue: QueueName, parentId: string, report: ReconcileReport): Promise<void> {
  const parent = await deps.queues.inspectJob(queue, parentId);
  if (parent.state !== 'waiting-children') return;
  if ((await deps.queues.pendingChildren(queue, parentId)).length > 0) return;
  deps.logger.warn({ queue, jobId: parentId }, 'parent waits for nothing; waking it');
  await deps.queues.nudge(queue, parentId);
  report.parentsNudged += 1;
}

/** Invariant 2 for a root in `waiting-children`: drop or re-add its dead step jobs. */
async function repairRootChildren(
  deps: EngineDeps,
  runId: string,
  rootId: string,
  specs: Map<string, StepJobSpec>,
  report: ReconcileReport,
): Promise<void> {
  for (const child of await deps.queues.pendingChildren('runs', rootId)) {
    const job = await deps.queues.inspectJob(child.queue, child.id);
    if (job.state !== 'missing' && !isDead(job)) continue;
    if (job.state !== 'missing') {
      deps.logger.warn({ runId, jobId: child.id, state: job.state }, 'root waits on a dead job; removing it');
      if (await deps.queues.removeJob(child.queue, child.id)) report.deadJobsRemoved += 1;
      continue; // ensureStepJobs re-adds it if its step is live
    }
    // Missing: re-add under the same id. A live step runs; a settled one completes at once.
    const parsed = parseStepJobId(runId, child.id);
    const spec = parsed ? specs.get(parsed.stepId) : undefined;
    if (!parsed || !spec) continue;
    await deps.queues.addStepJobs(rootId, runId, [{ ...spec, generation: parsed.generation }]);
    report.jobsAdded += 1;
  }
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
      specs: stepSpecsOf(definition),
      promote: decided.map((d) => d.jobId).filter((id) => waitingJobs.has(id)),
      // A child run's root belongs under its parent's orchestrator step job (its idempotency key).
      parentJobId: run.parentRunId && run.idempotencyKey ? run.idempotencyKey : undefined,
    };
  });
  if (!state) return report;
  report.runs += 1;
  const root = await deps.queues.inspectJob('runs', state.rootId);
  if (root.state === 'missing' || root.state === 'completed' || isDead(root)) {
    // No root (Redis lost it) or a dead one for a live run: build the flow again from Postgres.
    if (root.state !== 'missing' && !(await deps.queues.removeJob('runs', state.rootId))) return report;
    deps.logger.warn({ runId, rootJobId: state.rootId, rootState: root.state }, 'run root job missing or dead; re-creating the flow');
    const parentJob = state.parentJobId ? await deps.queues.inspectJob('agent-orchestrator', state.parentJobId) : undefined;
    const parent =
      parentJob && LIVE_JOB_STATES.has(parentJob.state) ? { id: parentJob.id, queue: deps.queues.qualifiedName('agent-orchestrator') } : undefined;
    await deps.queues.addRunFlow(state.rootId, runId, state.live, parent);
    report.rootsCreated += 1;
    // Children that already existed joined the new root; dead ones among them are replaced.
    await ensureStepJobs(deps, state.rootId, runId, state.live, report);
  } else {
    if (root.state === 'waiting-children') await repairRootChildren(deps, runId, state.rootId, state.specs, report);
    await ensureStepJobs(deps, state.rootId, runId, state.live, report);
    await nudgeIfIdle(deps, 'runs', state.rootId, report);
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
  const report = emptyReport();
  // First, so that a run admitted here whose flow could not be added is repaired below.
  try {
    report.throttledAdmitted = await admitAllThrottled(deps);
  } catch (err) {
    deps.logger.error({ err }, 'admitting throttled runs failed');
  }
  const open = await deps.database.db
    .select({ id: runs.id })
    .from(runs)
    .where(inArray(runs.status, ['queued', 'running', 'cancelling']))
    .orderBy(runs.createdAt)
    .limit(limit);
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
