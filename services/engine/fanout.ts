/**
 * Fan-out (D4): a `foreach:` step runs its agent once per item, as BullMQ child jobs of the
 * step's own job (a real parent/child: the step job adds item jobs and waits in
 * `waiting-children`). At most `concurrency` items are queued or running at once: the first
 * `concurrency` are added up front, and each item that finishes adds the next one as a sibling
 * while its own job is still active, so the parent cannot wake early (the root-job pattern, one
 * level down). When every item job is done the step job wakes and gathers the outputs in input
 * order. A failed item follows the step's `onError`: `fail` stops adding items and fails the
 * step; `continue` carries on and leaves `null` in that item's place.
 */
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import { Redactor, type SerializedError } from '../../lib/index.js';
import { stepItems } from '../../db/index.js';
import { evaluateMapping, type ExpressionScope, type StepSpec } from '../../definitions/index.js';
import { itemJobId, stepJobId, type ItemJobData, type StepJobData } from '../../queues/index.js';
import { jobSpecFor, loadSteps, scopeOf } from './advance.js';
import { definitionById } from '../store/index.js';
import type { EngineDeps } from './deps.js';
import { withRun, type RunScope } from './run-scope.js';
import { secretsForMapping, unsealRunInput } from './sensitive.js';
import { attemptRun, completeStep, failStep, type AttemptRun, type StepRecord, type StepRef } from './steps.js';

type ItemRow = typeof stepItems.$inferSelect;

function itemsWhere(data: StepJobData) {
  return and(eq(stepItems.runId, data.runId), eq(stepItems.stepId, data.stepId), eq(stepItems.generation, data.generation));
}

/** Whether an item failed for good and the step fails on error (then no more items start). */
async function stoppedByFailure(scope: RunScope, data: StepJobData): Promise<boolean> {
  const [failed] = await scope.tx
    .select({ idx: stepItems.idx })
    .from(stepItems)
    .where(and(itemsWhere(data), eq(stepItems.status, 'failed')))
    .limit(1);
  if (!failed) return false;
  const { spec: definition } = await definitionById(scope.tx, scope.run.definitionId);
  return definition.steps.find((s) => s.id === data.stepId)?.onError !== 'continue';
}

/**
 * Enqueue the jobs of items `indexes` (after commit) as children of their step's job, with the
 * step's retry policy.
 */
async function enqueueItems(scope: RunScope, data: StepRef, indexes: readonly number[]): Promise<void> {
  if (indexes.length === 0) return;
  const { spec: definition } = await definitionById(scope.tx, scope.run.definitionId);
  const spec = definition.steps.find((s) => s.id === data.stepId);
  if (!spec) return;
  const parentJobId = stepJobId(data.runId, data.stepId, data.generation);
  const jobSpec = jobSpecFor(spec, data.generation);
  scope.enqueue(...indexes.map((index) => ({ kind: 'item' as const, runId: data.runId, parentJobId, spec: jobSpec, index })));
}

/** Queue up to `slots` pending items (lowest index first) and enqueue their jobs; returns their indexes. */
async function queueNext(scope: RunScope, data: StepJobData, slots: number): Promise<number[]> {
  if (slots <= 0) return [];
  const next = await scope.tx
    .select({ idx: stepItems.idx })
    .from(stepItems)
    .where(and(itemsWhere(data), eq(stepItems.status, 'pending')))
    .orderBy(asc(stepItems.idx))
    .limit(slots);
  const ids = next.map((n) => n.idx);
  if (ids.length > 0) {
    await scope.tx.update(stepItems).set({ status: 'queued' }).where(and(itemsWhere(data), inArray(stepItems.idx, ids)));
  }
  await enqueueItems(scope, data, ids);
  return ids;
}

/** What the step job should do next. */
export type FanoutState =
  /** Items are in flight (their jobs enqueued under the step job, if lost): wait for them. */
  | { kind: 'wait'; indexes: number[] }
  /** Every item finished: the step was recorded; add `ready` under the root and ack. */
  | ({ kind: 'done' } & StepRecord);

/**
 * Set up (first call) or check (after waking) a fan-out step's items.
 * @param items - the list the step's `foreach` yielded (its recorded input).
 */
export async function advanceFanout(deps: EngineDeps, data: StepJobData, attempt: number, spec: StepSpec, items: unknown[]): Promise<FanoutState> {
  const settled = await withRun(deps, data.runId, async (scope) => {
    const { tx } = scope;
    const rows = await tx.select().from(stepItems).where(itemsWhere(data)).orderBy(asc(stepItems.idx));
    if (rows.length === 0 && items.length > 0) {
      await tx.insert(stepItems).values(
        items.map((item, idx) => ({ runId: data.runId, stepId: data.stepId, generation: data.generation, idx, status: 'pending' as const, item: item ?? null })),
      );
      const first = await queueNext(scope, data, spec.concurrency);
      await scope.emit('step.progress', data.stepId, { attempt, items: items.length, queued: first.length });
      return { kind: 'wait' as const, indexes: first };
    }
    const open = rows.filter((r) => r.status === 'pending' || r.status === 'queued' || r.status === 'running');
    const failed = rows.filter((r) => r.status === 'failed');
    const stopping = failed.length > 0 && spec.onError !== 'continue';
    const inFlight = open.filter((r) => r.status !== 'pending');
    if (inFlight.length > 0) {
      await enqueueItems(scope, data, inFlight.map((r) => r.idx)); // re-added only if lost
      return { kind: 'wait' as const, indexes: inFlight.map((r) => r.idx) };
    }
    if (open.length > 0 && !stopping) {
      // Nothing in flight but items left (e.g. Redis lost the jobs): start the window again.
      return { kind: 'wait' as const, indexes: await queueNext(scope, data, spec.concurrency) };
    }
    return { kind: 'settled' as const, rows, stopping };
  });
  if (settled.kind === 'wait') return settled;
  const { rows, stopping } = settled;
  if (stopping) {
    const failures = rows.filter((r) => r.status === 'failed');
    const first = failures[0]?.error as SerializedError | null;
    // Items that all failed for one stated reason (e.g. MISSING_SECRET) fail the step with it, so
    // callers see the cause; mixed or unclassified (INTERNAL) failures stay ITEM_FAILED.
    const codes = new Set(failures.map((r) => (r.error)?.code));
    const [only] = codes;
    const code = codes.size === 1 && typeof only === 'string' && only !== 'INTERNAL' ? only : 'ITEM_FAILED';
    const error: SerializedError = {
      name: 'FanoutFailed',
      code,
      message: `${failures.length} of ${rows.length} items failed; item ${failures[0]?.idx}: ${first?.message ?? 'failed'}`,
    };
    return { kind: 'done', ...(await failStep(deps, data, attempt, error, true)) };
  }
  const output = rows.map((r) => (r.status === 'completed' ? r.output : null));
  return { kind: 'done', ...(await completeStep(deps, data, attempt, output, { items: rows.length })) };
}

/** Outcome of claiming an item job (`sensitive`: values to redact from what the item reports). */
export type ItemStart =
  | { kind: 'run'; attempt: number; input: unknown; spec: StepSpec; idempotencyKey: string; sensitive: string[]; run: AttemptRun }
  | { kind: 'inactive'; reason: string };

/** Claim an item job: resolve the step's `with:` for this item (`item`, `index` in scope). */
export async function beginItem(deps: EngineDeps, data: ItemJobData): Promise<ItemStart> {
  return withRun(deps, data.runId, async (scope) => {
    const { tx, run } = scope;
    if (run.status !== 'running') return { kind: 'inactive', reason: `run is ${run.status}` };
    const [item] = await tx.select().from(stepItems).where(and(itemsWhere(data), eq(stepItems.idx, data.index)));
    if (!item || (item.status !== 'queued' && item.status !== 'running')) {
      return { kind: 'inactive', reason: `item is ${item?.status ?? 'missing'}` };
    }
    const { spec: definition } = await definitionById(tx, run.definitionId);
    const spec = definition.steps.find((s) => s.id === data.stepId);
    if (!spec) return { kind: 'inactive', reason: 'step not in definition' };
    const rows = await loadSteps(scope);
    const real = unsealRunInput(deps, run);
    const exprScope = { ...scopeOf({ ...run, input: real.input }, rows), item: item.item, index: item.idx } as ExpressionScope;
    const secrets = await secretsForMapping(deps, tx, run.organizationId, spec.with);
    const input = await evaluateMapping(spec.with, { ...exprScope, secrets });
    const sensitive = [...real.values, ...Object.values(secrets)];
    await tx
      .update(stepItems)
      .set({ status: 'running', attempts: item.attempts + 1, input: new Redactor(sensitive).redact(input ?? null), startedAt: sql`coalesce(${stepItems.startedAt}, now())` })
      .where(and(itemsWhere(data), eq(stepItems.idx, data.index)));
    return {
      kind: 'run',
      attempt: item.attempts + 1,
      input,
      spec,
      idempotencyKey: itemJobId(data.runId, data.stepId, data.generation, data.index),
      sensitive,
      run: attemptRun(run),
    };
  });
}

/**
 * Record an item's result. A completed item — or one failed for good while the step continues on
 * error — frees a slot: the next pending item is queued, its job added as a sibling while this
 * item's job is still active.
 * @param final - for failures: no attempt will follow.
 * @returns indexes of the items queued now.
 */
export async function finishItem(
  deps: EngineDeps,
  data: ItemJobData,
  result: { output: unknown } | { error: SerializedError; final: boolean },
): Promise<number[]> {
  return withRun(deps, data.runId, async (scope) => {
    const where = and(itemsWhere(data), eq(stepItems.idx, data.index), eq(stepItems.status, 'running'));
    if ('output' in result) {
      const done = await scope.tx
        .update(stepItems)
        .set({ status: 'completed', output: result.output ?? null, error: null, finishedAt: sql`now()` })
        .where(where)
        .returning({ idx: stepItems.idx });
      if (done.length === 0) return [];
      return (await stoppedByFailure(scope, data)) ? [] : queueNext(scope, data, 1);
    }
    if (!result.final) {
      await scope.tx.update(stepItems).set({ status: 'queued', error: result.error }).where(where);
      return [];
    }
    const failed = await scope.tx
      .update(stepItems)
      .set({ status: 'failed', error: result.error, finishedAt: sql`now()` })
      .where(where)
      .returning({ idx: stepItems.idx });
    if (failed.length === 0) return [];
    const { spec: definition } = await definitionById(scope.tx, scope.run.definitionId);
    const onError = definition.steps.find((s) => s.id === data.stepId)?.onError;
    return onError === 'continue' ? queueNext(scope, data, 1) : [];
  });
}

/** Items of a step generation (for views and tests). */
export async function itemsOf(deps: EngineDeps, runId: string, stepId: string, generation: number): Promise<ItemRow[]> {
  return deps.database.db
    .select()
    .from(stepItems)
    .where(and(eq(stepItems.runId, runId), eq(stepItems.stepId, stepId), eq(stepItems.generation, generation)))
    .orderBy(asc(stepItems.idx));
}

