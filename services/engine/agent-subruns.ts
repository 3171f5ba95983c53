/**
 * Orchestrator named agents (SPEC G6): a step `agent: image-orchestrator` runs another
 * definition as one child run, or — with the agent's `foreach` — one child run per item, all in
 * parallel. Every child's root job is a BullMQ child of the step's job, which waits in
 * `waiting-children` until all of them finish (the same parent/child link as `type:
 * orchestrator`, see `subruns.ts`). Children are idempotent by key: `<stepJobId>` for a single
 * child, `<stepJobId>.c<index>` per item. The step completes with the agent's output mapping
 * over the children's outputs once all completed; a failed or cancelled child fails it.
 */
import { and, eq, inArray } from 'drizzle-orm';
import type { SerializedError } from '../../lib/index.js';
import { runs } from '../../db/index.js';
import { stepJobId, type StepJobData } from '../../queues/index.js';
import type { EngineDeps } from './deps.js';
import { reconcileRun } from './reconcile.js';
import { startRun } from './start-run.js';
import { completeStep, failStep } from './steps.js';
import type { SubrunState } from './subruns.js';

/** The child runs an orchestrator agent's step asks for. */
export interface AgentSubrunPlan {
  slug: string;
  version?: number;
  /** One input per child run. */
  inputs: unknown[];
  /** One child (output = its output) rather than a list (output = the list of outputs). */
  single: boolean;
}

/**
 * Start the step's child runs (those not started yet), or, once every child has finished,
 * record the step: completed with `mapOutput(outputs)`, or failed naming the first failed child.
 * @param stepQueue - qualified name of the step job's queue (the children roots' parent).
 * @param mapOutput - the agent's output mapping over the child output (single) or outputs (list).
 */
export async function advanceAgentSubruns(
  deps: EngineDeps,
  data: StepJobData,
  attempt: number,
  plan: AgentSubrunPlan,
  stepQueue: string,
  mapOutput: (outputs: unknown) => Promise<unknown>,
): Promise<SubrunState> {
  const jobId = stepJobId(data.runId, data.stepId, data.generation);
  const keyOf = (index: number): string => (plan.single ? jobId : `${jobId}.c${index}`);
  const [parent] = await deps.database.db.select().from(runs).where(eq(runs.id, data.runId));
  if (!parent) throw new Error(`run ${data.runId} not found`);
  const keys = plan.inputs.map((_, i) => keyOf(i));
  const existing = keys.length === 0
    ? []
    : await deps.database.db
        .select()
        .from(runs)
        .where(and(eq(runs.organizationId, parent.organizationId), inArray(runs.idempotencyKey, keys)));
  const byKey = new Map(existing.map((r) => [r.idempotencyKey, r]));

  let started: string | undefined;
  for (const [index, input] of plan.inputs.entries()) {
    if (byKey.has(keys[index] ?? '')) continue;
    const child = await startRun(deps, {
      organizationId: parent.organizationId,
      createdBy: parent.createdBy,
      definition: plan.slug,
      ...(plan.version === undefined ? {} : { version: plan.version }),
      input: input ?? {},
      ...(parent.webhookUrl ? { webhookUrl: parent.webhookUrl } : {}),
      idempotencyKey: keyOf(index),
      parent: { runId: data.runId, stepId: data.stepId, jobId, queue: stepQueue },
    });
    started ??= child.id;
  }
  if (started !== undefined) return { kind: 'wait', childRunId: started };

  const children = keys.map((key) => byKey.get(key)).filter((r) => r !== undefined);
  const failed = children.find((c) => c.status === 'failed' || c.status === 'cancelled');
  if (failed) {
    const cause = failed.error as SerializedError | null;
    const error: SerializedError = {
      name: 'ChildRunFailed',
      code: 'CHILD_RUN_FAILED',
      message: `child run ${failed.id} (${failed.definitionSlug}) ${failed.status}: ${cause?.message ?? 'no reason'}`,
    };
    return { kind: 'done', childRunId: failed.id, ...(await failStep(deps, data, attempt, error, true)) };
  }
  const unfinished = children.filter((c) => c.status !== 'completed');
  if (unfinished.length > 0) {
    // Woken while children are unfinished (a root died, or Redis lost it): repair and wait.
    for (const child of unfinished) await reconcileRun(deps, child.id);
    return { kind: 'wait', childRunId: unfinished[0]?.id ?? '' };
  }
  const outputs = children.map((c) => c.output);
  const output = await mapOutput(plan.single ? outputs[0] : outputs);
  const childRunIds = children.map((c) => c.id);
  return { kind: 'done', childRunId: childRunIds[0] ?? '', ...(await completeStep(deps, data, attempt, output, { childRunIds })) };
}
