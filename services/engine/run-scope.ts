/**
 * The per-run critical section. Every change to a run's state happens inside `withRun`:
 * one Postgres transaction holding the run's row lock (`SELECT … FOR UPDATE`), in which
 * events are appended with the next per-run sequence number. After the commit, each event is
 * handed to the `webhooks` queue when the run has a `webhookUrl`.
 *
 * The row lock is what makes readiness decisions race-free: two predecessors finishing at
 * once serialise here, so their common successor is queued exactly once (SPEC R3).
 */
import { eq } from 'drizzle-orm';
import { NotFoundError, countRunFinished } from '../../lib/index.js';
import { runEvents, runs, type Db } from '../../db/index.js';
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

/** Handle on a locked run inside its transaction. */
export interface RunScope {
  tx: Tx;
  /** The run row as read under the lock. */
  run: RunRow;
  /**
   * Append an event (same transaction as the state change it describes).
   * @returns the event's per-run sequence number.
   */
  emit(type: RunEventType, stepId: string | null, data: Record<string, unknown>): Promise<number>;
}

/**
 * Open a scope on a run inside an existing transaction: lock its row and prepare `emit`.
 * Call `flush()` before the transaction ends to persist the new sequence number.
 */
export async function openRunScope(tx: Tx, runId: string): Promise<RunScope & { emitted: number[]; emittedTypes: string[]; flush(): Promise<void> }> {
  const [run] = await tx.select().from(runs).where(eq(runs.id, runId)).for('update');
  if (!run) throw new NotFoundError(`run ${runId} not found`);
  let seq = run.eventSeq;
  const emitted: number[] = [];
  const emittedTypes: string[] = [];
  return {
    tx,
    run,
    emitted,
    emittedTypes,
    async emit(type, stepId, data) {
      seq += 1;
      emittedTypes.push(type);
      await tx.insert(runEvents).values({ runId, seq, type, stepId, data, notify: run.webhookUrl !== null });
      emitted.push(seq);
      return seq;
    },
    async flush() {
      if (seq !== run.eventSeq) await tx.update(runs).set({ eventSeq: seq }).where(eq(runs.id, runId));
    },
  };
}

/**
 * Run `fn` under the run's lock, then (after commit) enqueue webhook deliveries for the events
 * it emitted.
 * @throws {NotFoundError} when the run does not exist.
 */
export async function withRun<T>(deps: EngineDeps, runId: string, fn: (scope: RunScope) => Promise<T>): Promise<T> {
  let emitted: number[] = [];
  let webhookUrl: string | null = null;
  let finished: ReadonlyArray<readonly [string, string]> = [];
  const result = await deps.database.db.transaction(async (tx) => {
    const scope = await openRunScope(tx, runId);
    webhookUrl = scope.run.webhookUrl;
    const out = await fn(scope);
    await scope.flush();
    emitted = scope.emitted;
    finished = scope.emittedTypes.filter((t) => TERMINAL_RUN_EVENTS.has(t)).map((t) => [scope.run.definitionSlug, t.slice(4)] as const); // observability hook
    return out;
  });
  for (const [definition, status] of finished) countRunFinished(definition, status); // observability hook (after commit)
  if (webhookUrl) await enqueueWebhooks(deps, runId, emitted);
  return result;
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
