/**
 * Sub-orchestrations (D6): an `orchestrator` step starts a child run of another definition. The
 * child run's root job is a BullMQ child of the step's job, which waits in `waiting-children`;
 * parent and child are linked in Postgres (`runs.parent_run_id`, `parent_step_id`). The step's
 * mapped `with:` is the child's input; the child's output is the step's output; a failed or
 * cancelled child fails the step. Cancelling the parent cancels its children (interventions.ts).
 *
 * Orchestrator named agents (SPEC G6) use the same mechanism with a plan: one child run, or — with
 * the agent's `foreach` — one per item, all started at once. Children are idempotent by key:
 * `<stepJobId>` for a single child, `<stepJobId>.c<index>` per item; the step completes with the
 * agent's output mapping over the child outputs once all completed.
 */
import { and, eq, inArray, sql } from 'drizzle-orm';
import { MISSING_PARENT_KEY, RunDepthExceededError, classifyInfrastructure } from '../../lib/index.js';
import { runs } from '../../db/index.js';
import type { OrchestratorStep } from '../../definitions/index.js';
import { stepJobId, type StepJobData } from '../../queues/index.js';
import type { EngineDeps } from './deps.js';
import { reconcileRun } from './reconcile.js';
import { startRun, type StartRunRequest } from './start-run.js';
import { completeStep, failStep, type StepRecord } from './steps.js';
import { engineFailure } from './statuses.js';

/** What the orchestrator step's job should do next. */
export type SubrunState =
  /** The child run(s) are under way: wait for their root jobs. */
  | { kind: 'wait'; childRunId: string }
  /** Every child finished and the step was recorded. */
  | ({ kind: 'done'; childRunId: string } & StepRecord);

/** The child runs a step asks for. */
export interface SubrunPlan {
  slug: string;
  version?: number;
  /** One input per child run. */
  inputs: unknown[];
  /** One child (output = its output, key = the step job id) rather than a list of them. */
  single: boolean;
}

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
  const plan: SubrunPlan = { slug: spec.run.slug, ...(spec.run.version === undefined ? {} : { version: spec.run.version }), inputs: [input], single: true };
  return advanceSubruns(deps, data, attempt, plan, stepQueue);
}

/**
 * Start the plan's child runs not started yet, or, once every child has finished, record the
 * step: completed with `mapOutput(output | outputs)`, or failed naming the first failed child.
 * @throws {RunDepthExceededError} (`RUN_DEPTH_EXCEEDED`, never retried: the step fails) when a
 *   child would be nested deeper than `MAX_RUN_DEPTH`; nothing is started.
 * @param stepQueue - qualified name of the step job's queue (the children roots' parent).
 * @param mapOutput - maps the child output (single) or the list of outputs; default: as is.
 */
export async function advanceSubruns(
  deps: EngineDeps,
  data: StepJobData,
  attempt: number,
  plan: SubrunPlan,
  stepQueue: string,
  mapOutput: (outputs: unknown) => Promise<unknown> = (outputs) => Promise.resolve(outputs),
): Promise<SubrunState> {
  const jobId = stepJobId(data.runId, data.stepId, data.generation);
  const keys = plan.inputs.map((_, index) => (plan.single ? jobId : `${jobId}.c${index}`));
  const [parent] = await deps.database.db.select().from(runs).where(eq(runs.id, data.runId));
  if (!parent) throw new Error(`run ${data.runId} not found`);
  const existing =
    keys.length === 0
      ? []
      : await deps.database.db
          .select()
          .from(runs)
          .where(and(eq(runs.organizationId, parent.organizationId), inArray(runs.idempotencyKey, keys)));
  const byKey = new Map(existing.map((r) => [r.idempotencyKey, r]));

  if (keys.some((key) => !byKey.has(key))) await checkRunDepth(deps, data.runId);
  let started: string | undefined;
  for (const [index, input] of plan.inputs.entries()) {
    const key = keys[index] ?? jobId;
    if (byKey.has(key)) continue;
    const request: StartRunRequest = {
      organizationId: parent.organizationId,
      createdBy: parent.createdBy,
      definition: plan.slug,
      ...(plan.version === undefined ? {} : { version: plan.version }),
      input: input ?? {},
      ...(parent.webhookUrl ? { webhookUrl: parent.webhookUrl } : {}),
      idempotencyKey: key,
      parent: { runId: data.runId, stepId: data.stepId, jobId, queue: stepQueue },
    };
    const child = await startChild(deps, data, jobId, request);
    started ??= child.id;
  }
  if (started !== undefined) return { kind: 'wait', childRunId: started };

  const children = keys.map((key) => byKey.get(key)).filter((r) => r !== undefined);
  const failed = children.find((c) => c.status === 'failed' || c.status === 'cancelled');
  if (failed) {
    const cause = failed.error;
    const error = engineFailure('CHILD_RUN_FAILED', 'ChildRunFailed', `child run ${failed.id} (${failed.definitionSlug}) ${failed.status}: ${cause?.message ?? 'no reason'}`);
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
  const first = children[0]?.id ?? '';
  const extra = plan.single ? { childRunId: first } : { childRunIds: children.map((c) => c.id) };
  return { kind: 'done', childRunId: first, ...(await completeStep(deps, data, attempt, output, extra)) };
}

/**
 * Start one child run. When Redis lost this step's job (the child's parent), re-create the parent
 * run's jobs from Postgres first, then attach the child to the re-created step job. This copy of
 * the job no longer owns it; its next BullMQ call fails with a missing lock and it stops quietly.
 */
async function startChild(deps: EngineDeps, data: StepJobData, jobId: string, request: StartRunRequest): Promise<{ id: string }> {
  try {
    return await startRun(deps, request);
  } catch (err) {
    if (classifyInfrastructure(err)?.reason !== MISSING_PARENT_KEY) throw err;
    deps.logger.warn({ runId: data.runId, jobId }, 'parent step job lost; re-creating it, then starting the child run');
    await reconcileRun(deps, data.runId);
    return startRun(deps, request);
  }
}

/**
 * Refuse to start a child of `runId` deeper than `MAX_RUN_DEPTH` (a top-level run has depth 0;
 * the chain of `parent_run_id`s is walked in one recursive query, at most `MAX_RUN_DEPTH + 1`
 * levels).
 * @throws {RunDepthExceededError} when the child's depth would exceed the limit.
 */
async function checkRunDepth(deps: EngineDeps, runId: string): Promise<void> {
  const max = deps.config.limits.maxRunDepth;
  const rows = await deps.database.db.execute<{ depth: number | null }>(sql`
    with recursive chain(id, parent, depth) as (
      select id, parent_run_id, 0 from runs where id = ${runId}
      union all
      select r.id, r.parent_run_id, c.depth + 1 from runs r join chain c on r.id = c.parent where c.depth <= ${max}
    )
    select max(depth)::int as depth from chain`);
  const depth = (rows[0]?.depth ?? 0) + 1;
  if (depth > max) {
    throw new RunDepthExceededError(`a child run here would be nested ${depth} levels deep; at most ${max} (MAX_RUN_DEPTH) are allowed`, {
      details: { depth, maxRunDepth: max },
    });
  }
}
