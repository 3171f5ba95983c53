/**
 * The worker adapter's half of the error taxonomy: how a thrown error becomes a BullMQ outcome
 * and a recorded step attempt. (The other half is the API's error handler.)
 *
 * - BullMQ control-flow errors (`DelayedError`, `WaitingChildrenError`, …) pass through.
 * - `AppError` with `retryable: false` (validation, agent rejection, cancel): the step fails now
 *   (`UnrecoverableError`, so BullMQ does not retry).
 * - Retryable `AppError`s and unknown errors (bugs, network): retried while attempts remain,
 *   with the step's backoff (or the upstream's `Retry-After` when longer).
 */
import { UnrecoverableError, type Job } from 'bullmq';
import { AppError, RetryLaterError, serializeError, type SerializedError } from '../lib/index.js';
import { stepBackoffMs, type StepJobData } from '../queues/index.js';

const CONTROL_FLOW = new Set(['DelayedError', 'WaitingChildrenError', 'WaitingError', 'RateLimitError']);

/** Whether BullMQ threw this to move the job itself (not a failure). */
export function isControlFlow(err: unknown): boolean {
  return err instanceof Error && CONTROL_FLOW.has(err.name);
}

/** Thrown to BullMQ to request a retry after exactly `delayMs` (read by `stepBackoffStrategy`). */
export class RetryScheduled extends Error {
  constructor(
    message: string,
    readonly delayMs: number,
  ) {
    super(message);
    this.name = 'RetryScheduled';
  }
}

/** How to record and rethrow a failed step attempt. */
export interface FailurePlan {
  error: SerializedError;
  final: boolean;
  /** Delay before the next attempt, in milliseconds (when not final). */
  retryDelayMs: number | undefined;
  /** What to throw to BullMQ. */
  rethrow: Error;
}

/** Decide a failed attempt's fate from the error and the job's remaining attempts. */
export function planFailure(err: unknown, job: Job<StepJobData>): FailurePlan {
  const error = serializeError(err);
  const retryable = err instanceof AppError ? err.retryable : true;
  const attemptsLeft = job.attemptsMade + 1 < (job.opts.attempts ?? 1);
  if (!retryable || !attemptsLeft) {
    return { error, final: true, retryDelayMs: undefined, rethrow: new UnrecoverableError(error.message) };
  }
  const { backoffMs, maxDelayMs } = job.data;
  let delayMs = stepBackoffMs(job.attemptsMade + 1, backoffMs, maxDelayMs);
  if (err instanceof RetryLaterError && err.retryAfterMs !== undefined) delayMs = Math.max(delayMs, err.retryAfterMs);
  return { error, final: false, retryDelayMs: delayMs, rethrow: new RetryScheduled(error.message, delayMs) };
}

/**
 * BullMQ backoff strategy for step jobs: the delay chosen by `planFailure`, or (for failures
 * that bypassed it) the step's own exponential backoff.
 */
export function stepBackoffStrategy(attemptsMade: number, _type?: string, err?: Error, job?: { data?: unknown }): number {
  if (err instanceof RetryScheduled) return err.delayMs;
  const data = job?.data as Partial<StepJobData> | undefined;
  return stepBackoffMs(attemptsMade, data?.backoffMs ?? 1000, data?.maxDelayMs ?? 60_000);
}
