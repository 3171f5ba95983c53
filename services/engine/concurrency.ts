/**
 * Per-definition concurrency (`concurrency: {limit, key?}` in the definition): at most `limit`
 * runs in progress (`queued`, `running`, `cancelling`) per group — (organization, definition
 * slug, value of `key` over the run input). A run started while its group is full, or while
 * older runs of the group wait, is `throttled`: it has its steps (`pending`) but no jobs. When a
 * run of the group finishes, the oldest throttled runs are admitted (first in, first out) in the
 * same transaction: `queued`, `run.queued`, their ready steps queued; their flows are created
 * after the commit (a crash in between leaves a `queued` run without a root, which the
 * reconciler re-creates). The reconciler also admits runs of any group with free slots
 * ({@link admitAllThrottled}), e.g. when a finishing transaction was missed.
 *
 * Locks, always in this order: the finishing run's row (`withRun`), then the group's
 * transaction-scoped advisory lock, then each throttled run's row. Starting a run takes only the
 * group lock, so starts and releases of one group serialise and the in-progress count read under
 * the lock is exact. Sub-runs (started by an orchestrator step) count toward their group but are
 * always admitted: holding a child back while its parent holds a slot can deadlock (the parent
 * waits for the child, the child for the parent's slot). Reopened runs (resume, step retry) are
 * admitted too.
 */
import { createHash } from 'node:crypto';
import { and, asc, eq, inArray, isNotNull, sql } from 'drizzle-orm';
import { runs } from '../../db/index.js';
import { evaluateExpression, type Definition } from '../../definitions/index.js';
import { rootJobId, type StepJobSpec } from '../../queues/index.js';
import { definitionById } from '../store/index.js';
import { advance, loadSteps } from './advance.js';
import type { EngineDeps } from './deps.js';
import { enqueueWebhooks, openRunScope, type RunScope, type Tx } from './run-scope.js';
import { RUN_IN_PROGRESS_STATUSES, isRunThrottled } from './statuses.js';

/** A run's concurrency group within its organization and definition slug. */
export interface ConcurrencyGroup {
  /** The `key` expression's value as text ('' without a key). */
  key: string;
  /** Slots of the group (the definition's `concurrency.limit`). */
  limit: number;
}

/** A throttled run admitted in a committed transaction, whose flow is still to be created. */
export interface AdmittedRun {
  runId: string;
  ready: StepJobSpec[];
  emitted: number[];
}

/** Longest key kept as text; a longer one is stored as its SHA-256 (`sha256:<hex>`). */
const MAX_KEY_CHARS = 200;

/**
 * The concurrency group of a new run, or `undefined` when the definition sets no limit.
 * @param input - the run input as stored (sealed fields read as `"[redacted]"`).
 * @returns the key as text: a string as is, `null`/nothing as '', anything else as JSON.
 * @throws {ValidationError} the key expression fails on this input (names `input`).
 */
export async function concurrencyGroupOf(definition: Definition, input: unknown, runId: string): Promise<ConcurrencyGroup | undefined> {
  const policy = definition.concurrency;
  if (!policy) return undefined;
  if (policy.key === undefined) return { key: '', limit: policy.limit };
  const value = await evaluateExpression(policy.key, { input, steps: {}, run: { id: runId, definition: definition.slug } });
  const text = value === undefined || value === null ? '' : typeof value === 'string' ? value : JSON.stringify(value);
  const key = text.length > MAX_KEY_CHARS ? `sha256:${createHash('sha256').update(text).digest('hex')}` : text;
  return { key, limit: policy.limit };
}

/** Take the group's advisory lock until the transaction ends. */
async function lockGroup(tx: Tx, organizationId: string, slug: string, key: string): Promise<void> {
  // Organization ids and slugs hold no '/', so the text names one group (a hash collision only serialises two groups).
  await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`baton.concurrency/${organizationId}/${slug}/${key}`}, 0))`);
}

/** The group's runs in progress and throttled (under its lock). */
async function groupCounts(tx: Tx, organizationId: string, slug: string, key: string): Promise<{ inProgress: number; throttled: number }> {
  const [row] = await tx
    .select({
      inProgress: sql<number>`count(*) filter (where ${inArray(runs.status, [...RUN_IN_PROGRESS_STATUSES])})::int`,
      throttled: sql<number>`count(*) filter (where ${runs.status} = 'throttled')::int`,
    })
    .from(runs)
    .where(and(eq(runs.organizationId, organizationId), eq(runs.definitionSlug, slug), eq(runs.concurrencyKey, key), inArray(runs.status, [...RUN_IN_PROGRESS_STATUSES, 'throttled'])));
  return { inProgress: row?.inProgress ?? 0, throttled: row?.throttled ?? 0 };
}

/**
 * Inside a new run's transaction, before it is inserted: take the group's lock and say whether
 * the run must wait (the group is full, or older runs wait: first in, first out).
 * @param subRun - a sub-orchestration's child: never waits (see module doc).
 */
export async function mustWait(tx: Tx, organizationId: string, slug: string, group: ConcurrencyGroup, subRun: boolean): Promise<boolean> {
  if (subRun) return false;
  await lockGroup(tx, organizationId, slug, group.key);
  const { inProgress, throttled } = await groupCounts(tx, organizationId, slug, group.key);
  return throttled > 0 || inProgress >= group.limit;
}

/** Admit one throttled run (locked in `scope`): `queued`, `run.queued`, its ready steps queued. */
async function admit(scope: RunScope & { emitted: number[]; flush(): Promise<void> }, waitedSince: Date): Promise<AdmittedRun> {
  const { tx, run } = scope;
  await tx.update(runs).set({ status: 'queued' }).where(eq(runs.id, run.id));
  run.status = 'queued';
  const { spec: definition } = await definitionById(tx, run.definitionId);
  await scope.emit('run.queued', null, {
    definition: run.definitionSlug,
    version: run.definitionVersion,
    throttledMs: Math.max(0, Date.now() - waitedSince.getTime()),
  });
  const ready = await advance(scope, definition, await loadSteps(scope));
  await scope.flush();
  return { runId: run.id, ready, emitted: scope.emitted };
}

/**
 * Admit the oldest throttled runs of a group while it has free slots, inside the caller's
 * transaction (after the caller's own run left the group, if it did). Takes the group lock,
 * then each candidate's row lock (see module doc for the order).
 * @returns the admitted runs: pass them to {@link startAdmitted} after the commit.
 */
export async function admitThrottled(tx: Tx, organizationId: string, slug: string, key: string): Promise<AdmittedRun[]> {
  await lockGroup(tx, organizationId, slug, key);
  let { inProgress } = await groupCounts(tx, organizationId, slug, key);
  const waiting = await tx
    .select({ id: runs.id, limit: runs.concurrencyLimit, createdAt: runs.createdAt })
    .from(runs)
    .where(and(eq(runs.organizationId, organizationId), eq(runs.definitionSlug, slug), eq(runs.concurrencyKey, key), eq(runs.status, 'throttled')))
    .orderBy(asc(runs.createdAt), asc(runs.id))
    .limit(100);
  const admitted: AdmittedRun[] = [];
  for (const candidate of waiting) {
    if (inProgress >= (candidate.limit ?? 1)) break;
    const scope = await openRunScope(tx, candidate.id);
    if (!isRunThrottled(scope.run.status)) continue; // cancelled while we waited for its lock
    admitted.push(await admit(scope, candidate.createdAt));
    inProgress += 1;
  }
  return admitted;
}

/**
 * Inside a transition that takes `run` out of progress (finished, or cancelled outright): admit
 * the next throttled runs of its group. A no-op for runs without a concurrency group.
 */
export async function releaseSlot(tx: Tx, run: { organizationId: string; definitionSlug: string; concurrencyKey: string | null }): Promise<AdmittedRun[]> {
  if (run.concurrencyKey === null) return [];
  return admitThrottled(tx, run.organizationId, run.definitionSlug, run.concurrencyKey);
}

/**
 * After the commit that admitted them: create each admitted run's flow and deliver its events.
 * Never throws: a flow that cannot be created now (Redis down) is re-created by the
 * reconciler (a `queued` run without a root).
 */
export async function startAdmitted(deps: EngineDeps, admitted: readonly AdmittedRun[]): Promise<void> {
  for (const run of admitted) {
    try {
      await deps.queues.addRunFlow(rootJobId(run.runId, 1), run.runId, run.ready);
    } catch (err) {
      deps.logger.warn({ err, runId: run.runId }, 'could not create an admitted run\'s flow; the reconciler will');
    }
    await enqueueWebhooks(deps, run.runId, run.emitted);
  }
}

/**
 * Reconciler: admit throttled runs of every group that has free slots (repairs a release that
 * a crash or a direct status change missed).
 * @returns how many runs were admitted.
 */
export async function admitAllThrottled(deps: EngineDeps): Promise<number> {
  const groups = await deps.database.db
    .selectDistinct({ organizationId: runs.organizationId, slug: runs.definitionSlug, key: runs.concurrencyKey })
    .from(runs)
    .where(and(eq(runs.status, 'throttled'), isNotNull(runs.concurrencyKey)))
    .limit(1000);
  let count = 0;
  for (const group of groups) {
    if (group.key === null) continue;
    const key = group.key;
    const admitted = await deps.database.db.transaction((tx) => admitThrottled(tx, group.organizationId, group.slug, key));
    await startAdmitted(deps, admitted);
    count += admitted.length;
  }
  return count;
}
