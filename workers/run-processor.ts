/**
 * Processor of the `runs` queue: the run's root job. BullMQ moves it to `wait` only when every
 * child step job is done; it then finalizes the run from Postgres. If Postgres says steps are
 * unfinished, it makes sure their jobs exist as its children and waits again (self-repair).
 */
import { WaitingChildrenError, type Job } from 'bullmq';
import { ValidationError } from '../lib/index.js';
import { RunJobData, queueForStepType, stepJobId, type StepJobSpec } from '../queues/index.js';
import { failOrphanedStep, finalizeRun } from '../services/engine/index.js';
import type { WorkerDeps } from './deps.js';

/** Passes of finalize → repair → wait before giving up this attempt (BullMQ retries the root). */
const MAX_PASSES = 3;

/**
 * Make sure each live step has a job attached to the root. A job BullMQ already failed without
 * our processor recording it (e.g. stalled too often) fails its step in Postgres.
 */
async function ensureChildren(deps: WorkerDeps, runId: string, specs: StepJobSpec[]): Promise<void> {
  for (const spec of specs) {
    const id = stepJobId(runId, spec.stepId, spec.generation);
    const existing = await deps.queues.get(queueForStepType(spec.type)).getJob(id);
    if (!existing) {
      deps.logger.warn({ runId, jobId: id }, 'step job missing; re-adding it');
      await deps.queues.addStepJobs(runId, [spec]);
      continue;
    }
    const state = await existing.getState();
    if (state === 'failed') {
      await failOrphanedStep(deps, { runId, ...spec }, existing.failedReason || 'job failed');
    } else if (state === 'completed') {
      // Finished in BullMQ but not in Postgres: run it again; the attempt fence keeps it single.
      deps.logger.warn({ runId, jobId: id }, 'step job completed without recording; re-adding it');
      await existing.remove();
      await deps.queues.addStepJobs(runId, [spec]);
    }
  }
}

/** Build the processor for the `runs` queue. */
export function createRunProcessor(deps: WorkerDeps) {
  return async (job: Job, token?: string): Promise<Record<string, unknown>> => {
    const parsed = RunJobData.safeParse(job.data);
    if (!parsed.success) throw new ValidationError(`job ${job.id}: invalid payload`);
    const { runId } = parsed.data;
    for (let pass = 0; pass < MAX_PASSES; pass += 1) {
      const outcome = await finalizeRun(deps, runId);
      if (outcome.kind === 'finished') return { status: outcome.status };
      await ensureChildren(deps, runId, outcome.jobs);
      if (await job.moveToWaitingChildren(token ?? '')) throw new WaitingChildrenError();
    }
    throw new Error(`run ${runId} has unfinished steps but no pending step jobs; will retry`);
  };
}
