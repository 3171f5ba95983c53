/**
 * Processor of the `runs` queue: the run's root job. BullMQ moves it to `wait` only when every
 * child step job is done; it then finalizes the run from Postgres. If Postgres says steps are
 * unfinished, it makes sure their jobs exist as its children and waits again (self-repair).
 * The same queue runs the periodic `reconcile` job over every unfinished run.
 */
import { UnrecoverableError, WaitingChildrenError, type Job } from 'bullmq';
import { RunJobData } from '../queues/index.js';
import { ensureStepJobs, finalizeRun, reconcileAll } from '../services/engine/index.js';
import type { WorkerDeps } from './deps.js';

/** Passes of finalize → repair → wait before giving up this attempt (BullMQ retries the root). */
const MAX_PASSES = 3;

/** Name of the periodic reconciliation job in the `runs` queue (a BullMQ job scheduler). */
export const RECONCILE_JOB = 'reconcile';

/** Build the processor for the `runs` queue: root jobs, and the reconcile scheduler's jobs. */
export function createRunProcessor(deps: WorkerDeps) {
  return async (job: Job, token?: string): Promise<Record<string, unknown>> => {
    if (job.name === RECONCILE_JOB) return { ...(await reconcileAll(deps)) };
    const parsed = RunJobData.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`job ${job.id}: invalid payload`);
    const { runId } = parsed.data;
    const rootId = job.id ?? runId;
    for (let pass = 0; pass < MAX_PASSES; pass += 1) {
      const outcome = await finalizeRun(deps, runId);
      if (outcome.kind === 'finished') return { status: outcome.status };
      await ensureStepJobs(deps, rootId, runId, outcome.jobs);
      if (await job.moveToWaitingChildren(token ?? '')) throw new WaitingChildrenError();
    }
    throw new Error(`run ${runId} has unfinished steps but no pending step jobs; will retry`);
  };
}
