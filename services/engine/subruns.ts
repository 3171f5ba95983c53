/**
 * Sub-orchestrations (D6): an `orchestrator` step starts a child run of another definition. The
 * child run's root job is a BullMQ child of the step's job, which waits in `waiting-children`;
 * parent and child are linked in Postgres (`runs.parent_run_id`, `parent_step_id`). The step's
 * mapped `with:` is the child's input; the child's output is the step's output; a failed or
 * cancelled child fails the step. Cancelling the parent cancels its children (interventions.ts).
 */
import { and, eq } from 'drizzle-orm';
import { MISSING_PARENT_KEY, classifyInfrastructure, type SerializedError } from '../../lib/index.js';
import { runs } from '../../db/index.js';
import type { OrchestratorStep } from '../../definitions/index.js';
import { stepJobId, type StepJobData } from '../../queues/index.js';
import type { EngineDeps } from './deps.js';
import { reconcileRun } from './reconcile.js';
import { startRun, type StartRunRequest } from './start-run.js';
import { completeStep, failStep, type StepRecord } from './steps.js';

/** What the orchestrator step's job should do next. */
export type SubrunState =
  /** The child run is under way: wait for its root job. */
  | { kind: 'wait'; childRunId: string }
  /** The child finished and the step was recorded. */
  | ({ kind: 'done'; childRunId: string } & StepRecord);

/**
 * Start the step's child run (idempotent: the idempotency key is the step's job id), or, when it
 * exists and has finished, record the step's outcome from it.
 * @param stepQueue - qualified name of the step job's queue (the child root's parent).
 */
export async function advanceSubrun(
  deps: EngineDeps,
  data: StepJobData,
  attempt: number,
  spec: OrchestratorStep,
  input: unknown,
  stepQueue: string,
): Promise<SubrunState> {
  const jobId = stepJobId(data.runId, data.stepId, data.generation);
  const [parent] = await deps.database.db.select().from(runs).where(eq(runs.id, data.runId));
  if (!parent) throw new Error(`run ${data.runId} not found`);
  const [existing] = await deps.database.db
    .select()
    .from(runs)
    .where(and(eq(runs.organizationId, parent.organizationId), eq(runs.idempotencyKey, jobId)));
  if (!existing) {
    const request: StartRunRequest = {
      organizationId: parent.organizationId,
      createdBy: parent.createdBy,
      definition: spec.run.slug,
      ...(spec.run.version === undefined ? {} : { version: spec.run.version }),
      input: input ?? {},
      ...(parent.webhookUrl ? { webhookUrl: parent.webhookUrl } : {}),
      idempotencyKey: jobId,
      parent: { runId: data.runId, stepId: data.stepId, jobId, queue: stepQueue },
    };
    try {
      const child = await startRun(deps, request);
      return { kind: 'wait', childRunId: child.id };
    } catch (err) {
      if (classifyInfrastructure(err)?.reason !== MISSING_PARENT_KEY) throw err;
      // Redis lost this step's job (the child's parent): re-create the parent run's jobs from
      // Postgres, then attach the child to the re-created step job. This copy of the job no
      // longer owns it; its next BullMQ call fails with a missing lock and it stops quietly.
      deps.logger.warn({ runId: data.runId, jobId }, 'parent step job lost; re-creating it, then starting the child run');
      await reconcileRun(deps, data.runId);
      const child = await startRun(deps, request);
      return { kind: 'wait', childRunId: child.id };
    }
  }
  if (existing.status === 'completed') {
    return { kind: 'done', childRunId: existing.id, ...(await completeStep(deps, data, attempt, existing.output, { childRunId: existing.id })) };
  }
  if (existing.status === 'failed' || existing.status === 'cancelled') {
    const cause = existing.error as SerializedError | null;
    const error: SerializedError = {
      name: 'ChildRunFailed',
      code: 'CHILD_RUN_FAILED',
      message: `child run ${existing.id} (${existing.definitionSlug}) ${existing.status}: ${cause?.message ?? 'no reason'}`,
    };
    return { kind: 'done', childRunId: existing.id, ...(await failStep(deps, data, attempt, error, true)) };
  }
  // Woken while the child is unfinished (its root died, or Redis lost it): repair and wait.
  await reconcileRun(deps, existing.id);
  return { kind: 'wait', childRunId: existing.id };
}
