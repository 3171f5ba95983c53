/**
 * Processor of the `checkpoints` queue (SPEC A1): open the approval, park the job in BullMQ's
 * delayed state until its deadline, and when woken (decision or deadline) apply the outcome.
 */
import { DelayedError, type Job } from 'bullmq';
import { z } from 'zod';
import {
  REMIND_JOB,
  beginStep,
  failStep,
  openCheckpoint,
  promoteParked,
  remindApproval,
  resolveCheckpoint,
  scheduleReminders,
} from '../services/engine/index.js';
import { getApproval } from '../services/store/index.js';
import type { WorkerDeps } from './deps.js';
import { isControlFlow, isInfrastructureError, planFailure } from './failure.js';
import { parseStepJob } from './step-processor.js';

/** Extra wait when the worker's clock wakes the job before Postgres' deadline, in milliseconds. */
const CLOCK_SKEW_MARGIN_MS = 1000;

const RemindJobData = z.object({ approvalId: z.uuid(), runId: z.uuid(), beforeMs: z.number().int().positive() });

/** Build the processor for the `checkpoints` queue (checkpoint steps and their reminders). */
export function createCheckpointProcessor(deps: WorkerDeps) {
  return async (job: Job, token?: string): Promise<Record<string, unknown>> => {
    if (job.name === REMIND_JOB) {
      const remind = RemindJobData.parse(job.data);
      return { reminded: await remindApproval(deps, remind.runId, remind.approvalId, remind.beforeMs) };
    }
    const data = parseStepJob(job);
    const jobId = job.id ?? '';
    const start = await beginStep(deps, data, jobId);
    if (start.kind === 'inactive') return { ignored: start.reason };
    if (start.kind === 'finished') return { alreadyFinished: true };
    if (start.kind === 'cached') return { ignored: 'checkpoints are never cached' };
    const { attempt } = start;
    try {
      const park = async (untilMs: number, approvalId: string): Promise<never> => {
        await job.moveToDelayed(untilMs, token);
        // A decision committed while we were still active found nothing to promote: do it now.
        const again = await getApproval(deps, approvalId);
        if (again && again.status !== 'pending') await promoteParked(deps, jobId);
        throw new DelayedError();
      };
      const state = await openCheckpoint(deps, data, attempt);
      if (state.approval.status === 'pending' && !state.expired) {
        await scheduleReminders(deps, state.approval, state.remindMs);
        await park(state.approval.expiresAt.getTime(), state.approval.id);
      }
      const resolution = await resolveCheckpoint(deps, data, attempt);
      if (resolution.kind === 'pending') {
        await park(Math.max(Date.now(), state.approval.expiresAt.getTime()) + CLOCK_SKEW_MARGIN_MS, state.approval.id);
        return {};
      }
      return { resolved: true };
    } catch (err) {
      if (isControlFlow(err) || isInfrastructureError(err)) throw err;
      const plan = planFailure(err, job);
      await failStep(deps, data, attempt, plan.error, plan.final, plan.retryDelayMs);
      throw plan.rethrow;
    }
  };
}
