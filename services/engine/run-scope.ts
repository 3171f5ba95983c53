/**
 * The per-run critical section. Every change to a run's state happens inside `withRun`:
 * one Postgres transaction holding the run's row lock (`SELECT … FOR UPDATE`), in which
 * events are appended with the next per-run sequence number, and the jobs the change calls for
 * are collected (`enqueue`). After the commit — never before, so no job can see state that
 * might roll back — `withRun` applies those effects: the jobs in one Redis round trip, then
 * the webhook deliveries of the events when the run has a `webhookUrl`.
 *
 * The row lock is what makes readiness decisions race-free: two predecessors finishing at
 * once serialise here, so their common successor is queued exactly once (SPEC R3).
 */
import { eq } from 'drizzle-orm';
import { NotFoundError } from '../../lib/index.js';
import { runEvents, runs, type Db } from '../../db/index.js';
import type { JobRequest } from '../../queues/index.js';
import type { EngineDeps } from './deps.js';

/** A drizzle transaction. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
export type RunRow = typeof runs.$inferSelect;

/** Event types (SPEC O1). */
export type RunEventType =
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
   * Append an event (same transaction as the state change it describes).
   * @returns the event's per-run sequence number.
   */
  emit: (type: RunEventType, stepId: string | null, data: Record<string, unknown>) => Promise<number>;
  /** Add jobs once the transaction commits (steps and items: while the caller's job is active). */
  enqueue: (...requests: JobRequest[]) => void;
}

/**
 * Open a scope on a run inside an existing transaction: lock its row and prepare `emit`.
 * Call `flush()` before the transaction ends to persist the new sequence number.
 */
export async function openRunScope(tx: Tx, runId: string): Promise<RunScope & { emitted: number[]; jobs: JobRequest[]; flush(): Promise<void> }> {
  const [run] = await tx.select().from(runs).where(eq(runs.id, runId)).for('update');
  if (!run) throw new NotFoundError(`run ${runId} not found`);
  let seq = run.eventSeq;
  const emitted: number[] = [];
  const jobs: JobRequest[] = [];
  return {
    tx,
    run,
    emitted,
    jobs,
    enqueue(...requests) {
      jobs.push(...requests);
    },
    async emit(type, stepId, data) {
      seq += 1;
      await tx.insert(runEvents).values({ runId, seq, type, stepId, data, notify: eventsNotify(run) });
      emitted.push(seq);
      return seq;
    },
    async flush() {
      if (seq !== run.eventSeq) await tx.update(runs).set({ eventSeq: seq }).where(eq(runs.id, runId));
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
  let notify = false;
  const result = await deps.database.db.transaction(async (tx) => {
    const scope = await openRunScope(tx, runId);
    notify = eventsNotify(scope.run);
    const out = await fn(scope);
    await scope.flush();
    emitted = scope.emitted;
    jobs = scope.jobs;
    return out;
  });
  await applyEffects(deps, runId, jobs, notify ? emitted : []);
  return result;
}

/**
 * What a committed transition calls for in Redis: its jobs (one round trip), then the webhook
 * deliveries of its events. Shared by `withRun` and the hot path.
 */
export async function applyEffects(deps: EngineDeps, runId: string, jobs: readonly JobRequest[], webhookSeqs: number[]): Promise<void> {
  await deps.queues.addAll(jobs);
  if (webhookSeqs.length > 0) await enqueueWebhooks(deps, runId, webhookSeqs);
}

/**
 * Hand committed events to the `webhooks` queue. A Redis failure here is logged, not thrown:
 * the state change is committed and must not be reported as failed.
 */
export async function enqueueWebhooks(deps: EngineDeps, runId: string, seqs: number[]): Promise<void> {
  try {
    await deps.queues.addWebhookDeliveries(runId, seqs);
  } catch (err) {
    // The events are the outbox: the reconciler's sweep sends them later.
    deps.logger.error({ err, runId, seqs }, 'could not enqueue webhook deliveries');
  }
}
