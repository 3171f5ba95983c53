/**
 * The worker adapter's half of the error taxonomy: how a thrown error becomes a recorded step
 * attempt and a {@link Directive} for its job. (The other half is the API's error handler.)
 *
 * - `AppError` with `retryable: false` (validation, agent rejection, cancel): the step fails now
 *   (`fail`: BullMQ makes no further attempt).
 * - Retryable `AppError`s and unknown errors (bugs, network): `retry` while attempts remain,
 *   with the step's backoff (or the upstream's `Retry-After` when longer).
 * - Infrastructure errors (our own Redis or Postgres failing, `lib/infrastructure.ts`) are not
 *   the step's failure: handlers rethrow them before recording anything, and the consumer
 *   (`queues/workers.ts`) parks the job with its own backoff, so no attempt is spent or recorded.
 */
import { AppError, RetryLaterError, serializeError, type SerializedError } from '../lib/index.js';
import { stepBackoffMs, type Directive, type JobContext } from '../queues/index.js';

export { isInfrastructureError } from '../lib/index.js';

/** Acknowledge the job with a small summary. */
export function ack(result: Record<string, unknown>): Directive {
  return { kind: 'ack', result };
}

/** How to record a failed step attempt, and what its job does next. */
export interface FailurePlan {
  error: SerializedError;
  final: boolean;
  /** Delay before the next attempt, in milliseconds (when not final). */
  retryDelayMs: number | undefined;
  directive: Directive;
}

/** Decide a failed attempt's fate from the error and the job's remaining attempts. */
export function planFailure(err: unknown, job: JobContext<'step' | 'item' | 'checkpoint'>): FailurePlan {
  const error = serializeError(err);
  const retryable = err instanceof AppError ? err.retryable : true;
  const attemptsLeft = job.attemptsMade + 1 < job.attempts;
  if (!retryable || !attemptsLeft) {
    return { error, final: true, retryDelayMs: undefined, directive: { kind: 'fail', reason: error.message } };
  }
  const { backoffMs, maxDelayMs } = job.data;
  let delayMs = stepBackoffMs(job.attemptsMade + 1, backoffMs, maxDelayMs);
  if (err instanceof RetryLaterError && err.retryAfterMs !== undefined) delayMs = Math.max(delayMs, err.retryAfterMs);
  return { error, final: false, retryDelayMs: delayMs, directive: { kind: 'retry', reason: error.message, delayMs } };
}
