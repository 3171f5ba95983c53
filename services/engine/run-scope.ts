/**
 * The per-run critical section. Every change to a run's state happens inside `withRun`:
 * one Postgres transaction holding the run's row lock (`SELECT … FOR UPDATE`), in which
 * events are appended with the next per-run sequence number, and the jobs the change calls for
 * are collected (`enqueue`). After the commit — never before, so no job can see state that
 * might roll back — `withRun` applies those effects: the jobs in one Redis round trip, then
 * the events go to `enqueueWebhooks` (webhooks.ts), which delivers them to the run's
 * `webhookUrl` and its organization's subscriptions.
 *
 * The row lock is what makes readiness decisions race-free: two predecessors finishing at
 * once serialise here, so their common successor is queued exactly once (SPEC R3).
 */
import { eq, sql } from 'drizzle-orm';
import { NotFoundError, countRunFinished, infrastructureBackoffMs, isTransactionConflict } from '../../lib/index.js';
import { runs, type Db } from '../../db/index.js';
import type { JobRequest } from '../../queues/index.js';
import type { EngineDeps } from './deps.js';
import { enqueueWebhooks } from './webhooks.js'; // webhooks entry point

/** A drizzle transaction. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
export type RunRow = typeof runs.$inferSelect;

/** Event types (SPEC O1). */
export type RunEventType =
  | 'run.throttled'
  | 'run.queued'
  | 'run.started'
  | 'run.completed'
  | 'run.failed'
  | 'run.cancelled'
  | 'run.resumed'
  | 'run.cancelling'
  | 'step.queued'
  | 'step.started'
  | 'step.progress'
  | 'step.retrying'
  | 'step.completed'
  | 'step.failed'
  | 'step.skipped'
  | 'step.cancelled'
  | 'checkpoint.requested'
  | 'checkpoint.responded'
  | 'checkpoint.reminded'
  | 'checkpoint.resolved'
  | 'checkpoint.expired';

/** Terminal run events: SSE streams end after one of these. */
export const TERMINAL_RUN_EVENTS: ReadonlySet<string> = new Set(['run.completed', 'run.failed', 'run.cancelled']);

/** Whether a run's events are to be delivered as webhooks (`run_events.notify`). */
export function eventsNotify(run: { webhookUrl: string | null }): boolean {
  return run.webhookUrl !== null;
}

/** Handle on a locked run inside its transaction. */
export interface RunScope {
  tx: Tx;
  /** The run row as read under the lock. */
  run: RunRow;
  /**
   * Append an event (same transaction as the state change it describes; written by `flush`).
   * @returns the event's per-run sequence number.
   */
  emit: (type: RunEventType, stepId: string | null, data: Record<string, unknown>) => Promise<number>;
  /** Add jobs once the transaction commits (steps and items: while the caller's job is active). */
  enqueue: (...requests: JobRequest[]) => void;
}

/**
 * Open a scope on a run inside an existing transaction: lock its row and prepare `emit`.
 * Call `flush()` before the transaction ends: it writes the events emitted so far (one
 * statement) and the new sequence number.
 */
export async function openRunScope(tx: Tx, runId: string): Promise<RunScope & { emitted: number[]; emittedTypes: string[]; jobs: JobRequest[]; flush(): Promise<void> }> {
  const [run] = await tx.select().from(runs).where(eq(runs.id, runId)).for('update');
  if (!run) throw new NotFoundError(`run ${runId} not found`);
  let seq = run.eventSeq;
  const emitted: number[] = [];
  const jobs: JobRequest[] = [];
  const emittedTypes: string[] = [];
  const pending: Array<{ seq: number; type: RunEventType; stepId: string | null; data: Record<string, unknown> }> = [];
  return {
    tx,
    run,
    emitted,
    jobs,
    emittedTypes,
    enqueue(...requests) {
      jobs.push(...requests);
    },
    // Events are written by `flush`, in one statement: nothing reads a run's events inside the
    // transition that appends them, and `created_at` is the transaction's `now()` either way.
    // eslint-disable-next-line @typescript-eslint/require-await -- emit stays async for its callers
    async emit(type, stepId, data) {
      seq += 1;
      emittedTypes.push(type);
      pending.push({ seq, type, stepId, data });
      emitted.push(seq);
      return seq;
    },
    async flush() {
      // Only `emit` advances the sequence, so no pending event means nothing to write. The
      // insert rides in the update's statement (one round trip); the events go as one JSON
      // parameter, so the statement's text (and its prepared plan) is the same for any number.
      if (pending.length === 0) return;
      const events = JSON.stringify(pending.splice(0).map((e) => ({ seq: e.seq, type: e.type, step_id: e.stepId, data: e.data })));
      await tx.execute(sql`
        with appended as (
          insert into run_events (run_id, seq, type, step_id, data, notify)
          select ${runId}::uuid, e.seq, e.type, e.step_id, e.data, ${eventsNotify(run)}::boolean
            from jsonb_to_recordset(${events}::jsonb) as e(seq integer, type text, step_id text, data jsonb))
        update runs set event_seq = ${seq}::integer where id = ${runId}::uuid`);
      run.eventSeq = seq;
    },
  };
}

/**
 * Run `fn` under the run's lock, then (after commit) apply its effects (see module doc).
 * @throws {NotFoundError} when the run does not exist.
 * @throws the Redis error when its jobs could not be added: the state change is committed, and
 *   the caller's job, retried, finds it and adds them again (every add is idempotent by job id).
 */
export async function withRun<T>(deps: EngineDeps, runId: string, fn: (scope: RunScope) => Promise<T>): Promise<T> {
  let emitted: number[] = [];
  let jobs: JobRequest[] = [];
  let finished: ReadonlyArray<readonly [string, string]> = [];
  const transaction = () =>
    deps.database.db.transaction(async (tx) => {
      const scope = await openRunScope(tx, runId);
      const out = await fn(scope);
      await scope.flush();
      emitted = scope.emitted;
      jobs = scope.jobs;
      finished = scope.emittedTypes.filter((t) => TERMINAL_RUN_EVENTS.has(t)).map((t) => [scope.run.definitionSlug, t.slice(4)] as const);
      return out;
    });
  const result = await retryConflicts(transaction, (err, tries) => deps.logger.warn({ err, runId, tries }, 'transaction conflict; running it again'));
  for (const [definition, status] of finished) countRunFinished(definition, status); // metrics, after the commit
  await applyEffects(deps, runId, jobs, emitted);
  return result;
}

/** Tries of a transaction that Postgres rolled back for a conflict (40001, 40P01), the first included. */
export const TRANSACTION_TRIES = 4;

/**
 * Run `transaction`, again (after a short jittered pause) while Postgres rolls it back for a
 * serialization failure or a deadlock, at most {@link TRANSACTION_TRIES} times in all.
 * @throws the last conflict when every try failed (still infrastructure: a worker parks its job,
 *   the API answers 503), or any other error at once.
 */
export async function retryConflicts<T>(transaction: () => Promise<T>, onConflict: (err: unknown, tries: number) => void): Promise<T> {
  for (let tries = 1; ; tries += 1) {
    try {
      return await transaction();
    } catch (err) {
      if (tries >= TRANSACTION_TRIES || !isTransactionConflict(err)) throw err;
      onConflict(err, tries);
      await new Promise((resolve) => setTimeout(resolve, infrastructureBackoffMs(tries, 20, 500)));
    }
  }
}

/**
 * What a committed transition calls for in Redis: its jobs (one round trip), then its events
 * to webhook delivery (`enqueueWebhooks` decides whether they go anywhere; it never throws).
 * Shared by `withRun` and the hot path.
 */
export async function applyEffects(deps: EngineDeps, runId: string, jobs: readonly JobRequest[], seqs: number[]): Promise<void> {
  await deps.queues.addAll(jobs);
  await enqueueWebhooks(deps, runId, seqs);
}

export { enqueueWebhooks };
