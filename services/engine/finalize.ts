/**
 * The root job's work: when every child job is done, check Postgres and finish the run — or,
 * if something is unfinished, say which jobs must exist so the root can wait for them again
 * (the run's last line of self-repair, SPEC R3).
 */
import { and, eq, sql } from 'drizzle-orm';
import type { SerializedError } from '../../lib/index.js';
import { steps } from '../../db/index.js';
import { evaluateMapping, type Definition } from '../../definitions/index.js';
import type { StepJobSpec } from '../../queues/index.js';
import { COMPENSATION_STATUS, advance, jobSpecFor, liveJobSpecs, loadSteps, scopeOf, type StepRow } from './advance.js';
import { definitionById } from '../store/index.js';
import type { EngineDeps } from './deps.js';
import { withRun, type RunScope } from './run-scope.js';
import { APPROVAL_ABORTED } from './steps.js';
import { engineFailure, isRunFinished } from './statuses.js';
import { releaseSlot, startAdmitted, type AdmittedRun } from './concurrency.js';

export type FinalizeOutcome =
  | { kind: 'finished'; status: string }
  /** Steps are still queued/running/waiting: these jobs must exist as children of the root. */
  | { kind: 'unfinished'; jobs: StepJobSpec[] };

export { APPROVAL_ABORTED };

/**
 * Compensation (D9): queue the compensation of the most recently completed step whose
 * compensation has not run yet (reverse completion order, one at a time: the root wakes after
 * each). Emits `step.queued` with `compensates`.
 * @returns its job spec, or `undefined` when none is left.
 */
async function queueNextCompensation(scope: RunScope, definition: Definition, rows: StepRow[]): Promise<StepJobSpec | undefined> {
  const byId = new Map(rows.map((r) => [r.stepId, r]));
  const candidates = definition.steps
    .filter((s) => s.compensate && byId.get(s.id)?.status === 'completed' && byId.get(s.compensate)?.status === COMPENSATION_STATUS)
    .sort((a, b) => (byId.get(b.id)?.finishedAt?.getTime() ?? 0) - (byId.get(a.id)?.finishedAt?.getTime() ?? 0));
  const done = candidates[0];
  const target = done?.compensate ? definition.steps.find((s) => s.id === done.compensate) : undefined;
  const row = target ? byId.get(target.id) : undefined;
  if (!done || !target || !row) return undefined;
  await scope.tx
    .update(steps)
    .set({ status: 'queued', queuedAt: sql`now()` })
    .where(and(eq(steps.runId, row.runId), eq(steps.stepId, row.stepId)));
  row.status = 'queued';
  await scope.emit('step.queued', row.stepId, { type: target.type, generation: row.generation, compensates: done.id });
  return jobSpecFor(target, row.generation);
}

/**
 * Finish the run if all its steps are settled (see module doc). A finished run's concurrency
 * slot goes to the oldest throttled run of its group in the same transaction (`concurrency.ts`).
 */
export async function finalizeRun(deps: EngineDeps, runId: string): Promise<FinalizeOutcome> {
  let admitted: AdmittedRun[] = [];
  const outcome = await withRun(deps, runId, async (scope): Promise<FinalizeOutcome> => {
    const { run, tx } = scope;
    if (isRunFinished(run.status)) {
      return { kind: 'finished', status: run.status };
    }
    const { spec: definition } = await definitionById(tx, run.definitionId);
    const rows = await loadSteps(scope);
    const ready = await advance(scope, definition, rows);
    const live = liveJobSpecs(definition, rows);
    if (ready.length > 0 || live.length > 0) return { kind: 'unfinished', jobs: live };
    if (run.status === 'cancelling') {
      const next = await queueNextCompensation(scope, definition, rows);
      if (next) return { kind: 'unfinished', jobs: [next] };
    }

    const specs = new Map(definition.steps.map((s) => [s.id, s]));
    const failures = rows.filter((r) => r.status === 'failed' && specs.get(r.stepId)?.onError !== 'continue');
    const aborted = failures.find((r) => (r.error)?.code === APPROVAL_ABORTED);
    let status: 'completed' | 'failed' | 'cancelled' = failures.length === 0 ? 'completed' : 'failed';
    if (aborted || run.status === 'cancelling') status = 'cancelled';
    let output: unknown = null;
    let error: SerializedError | null = null;
    if (status === 'completed') {
      try {
        output = (await evaluateMapping(definition.output, scopeOf(run, rows))) ?? null;
      } catch (err) {
        status = 'failed';
        error = engineFailure('OUTPUT_MAPPING_FAILED', 'OutputMappingError', (err as Error).message);
      }
    } else if (run.status === 'cancelling' && !aborted) {
      error = run.error ?? engineFailure('CANCELLED', 'RunCancelled', 'cancelled');
    } else {
      const first = aborted ?? failures[0];
      const cause = first?.error as SerializedError | null;
      error = engineFailure(aborted ? APPROVAL_ABORTED : 'STEP_FAILED', 'StepFailed', `step ${first?.stepId} ${aborted ? 'was aborted' : 'failed'}: ${cause?.message ?? 'unknown error'}`);
    }
    // Steps that can never run now (dormant compensations stay as they are).
    const never = await tx
      .update(steps)
      .set({ status: 'cancelled', finishedAt: sql`now()` })
      .where(and(eq(steps.runId, runId), eq(steps.status, 'pending')))
      .returning({ stepId: steps.stepId });
    for (const s of never) await scope.emit('step.cancelled', s.stepId, { reason: `run ${status}` });
    await tx.execute(
      sql`update runs set status = ${status}, output = ${output === null ? null : JSON.stringify(output)}::jsonb,
          error = ${error === null ? null : JSON.stringify(error)}::jsonb, finished_at = now(),
          started_at = coalesce(started_at, now()) where id = ${runId}`,
    );
    const type = status === 'completed' ? 'run.completed' : status === 'failed' ? 'run.failed' : 'run.cancelled';
    await scope.emit(type, null, status === 'completed' ? { output } : { error });
    admitted = await releaseSlot(tx, run);
    return { kind: 'finished', status };
  });
  await startAdmitted(deps, admitted);
  return outcome;
}
