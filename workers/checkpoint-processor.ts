/**
 * Handlers of the `checkpoints` queue (SPEC A1): a checkpoint step's job opens its approval and
 * parks in BullMQ's delayed state until its deadline. A decision finishes the step in its own
 * transaction and promotes the job, which then only finds its step finished; a deadline wakes
 * it to apply `onTimeout`. Reminders are delayed jobs of the same queue.
 */
import {
  beginStep,
  checkpointAlreadyFinished,
  failStep,
  openCheckpoint,
  promoteParked,
  remindApproval,
  resolveCheckpoint,
  scheduleReminders,
} from '../services/engine/index.js';
import { getApproval } from '../services/store/index.js';
import type { Directive, JobHandler } from '../queues/index.js';
import type { WorkerDeps } from './deps.js';
import { ack, isInfrastructureError, planFailure } from './failure.js';

/** Extra wait when the worker's clock wakes the job before Postgres' deadline, in milliseconds. */
const CLOCK_SKEW_MARGIN_MS = 1000;

/** Handle a checkpoint reminder: emit `checkpoint.reminded` if still pending. */
export function createRemindHandler(deps: WorkerDeps): JobHandler<'remind'> {
  return async ({ data }) => ack({ reminded: await remindApproval(deps, data.runId, data.approvalId, data.beforeMs) });
}

/** Handle a checkpoint step's job. */
export function createCheckpointHandler(deps: WorkerDeps): JobHandler<'checkpoint'> {
  return async (job) => {
    const { data } = job;
    // Woken after a decision finished the step: acknowledge without the run's lock (see there).
    if (await checkpointAlreadyFinished(deps, data)) return ack({ alreadyFinished: true });
    const start = await beginStep(deps, data, job.id);
    if (start.kind === 'inactive') return ack({ ignored: start.reason });
    if (start.kind === 'finished') return ack({ alreadyFinished: true });
    if (start.kind === 'cached') return ack({ ignored: 'checkpoints are never cached' });
    const { attempt } = start;
    try {
      const park = (untilMs: number, approvalId: string): Directive => ({
        kind: 'park',
        untilMs,
        // A decision committed while we were still active found nothing to promote: do it now.
        afterParking: async () => {
          const again = await getApproval(deps, approvalId);
          if (again && again.status !== 'pending') await promoteParked(deps, job.id);
        },
      });
      const state = await openCheckpoint(deps, data, attempt);
      if (state.approval.status === 'pending' && !state.expired) {
        await scheduleReminders(deps, state.approval, state.remindMs);
        return park(state.approval.expiresAt.getTime(), state.approval.id);
      }
      const resolution = await resolveCheckpoint(deps, data, attempt);
      if (resolution.kind === 'pending') {
        return park(Math.max(Date.now(), state.approval.expiresAt.getTime()) + CLOCK_SKEW_MARGIN_MS, state.approval.id);
      }
      return ack({ resolved: true });
    } catch (err) {
      if (isInfrastructureError(err)) throw err;
      const plan = planFailure(err, job);
      await failStep(deps, data, attempt, plan.error, plan.final, plan.retryDelayMs);
      return plan.directive;
    }
  };
}
