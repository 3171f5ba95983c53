/**
 * Handlers of the `runs` queue. A run's root job runs only when every child step job is done;
 * it then finalizes the run from Postgres. If Postgres says steps are unfinished, it makes sure
 * their jobs exist as its children and waits again (self-repair, SPEC R3). The periodic
 * `reconcile` job checks every unfinished run.
 */
import { ensureStepJobs, finalizeRun, reconcileAll } from '../services/engine/index.js';
import type { JobHandler } from '../queues/index.js';
import type { WorkerDeps } from './deps.js';
import { ack } from './failure.js';

/** Handle a run's root job. */
export function createRunHandler(deps: WorkerDeps): JobHandler<'run'> {
  return async (job) => {
    const { runId } = job.data;
    const outcome = await finalizeRun(deps, runId);
    if (outcome.kind === 'finished') return ack({ status: outcome.status });
    await ensureStepJobs(deps, job.id || runId, runId, outcome.jobs);
    return { kind: 'wait-children' };
  };
}

/** Handle the periodic reconciliation. */
export function createReconcileHandler(deps: WorkerDeps): JobHandler<'reconcile'> {
  return async () => ack({ ...(await reconcileAll(deps)) });
}
