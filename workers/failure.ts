/**
 * The worker adapter's half of the error taxonomy: how a thrown error becomes a BullMQ outcome
 * and a recorded step attempt. (The other half is the API's error handler.)
 *
 * - BullMQ control-flow errors (`DelayedError`, `WaitingChildrenError`, …) pass through.
 * - `AppError` with `retryable: false` (validation, agent rejection, cancel): the step fails now
 *   (`UnrecoverableError`, so BullMQ does not retry).
 * - Retryable `AppError`s and unknown errors (bugs, network): retried while attempts remain,
 *   with the step's backoff (or the upstream's `Retry-After` when longer).
 * - Infrastructure errors (our own Redis or Postgres failing, `lib/infrastructure.ts`) are not
 *   the step's failure: processors rethrow them untouched, and {@link withInfrastructureRetry}
 *   parks the job in `delayed` with its own backoff, so no attempt is spent or recorded.
 */
import { DelayedError, UnrecoverableError, type Job, type Processor } from 'bullmq';
import {
  AppError,
  RetryLaterError,
  classifyInfrastructure,
  infrastructureBackoffMs,
  serializeError,
  type Logger,
  type SerializedError,
} from '../lib/index.js';
import { NUDGE_JOB, stepBackoffMs, type StepJobData } from '../queues/index.js';

const CONTROL_FLOW = new Set(['DelayedError', 'WaitingChildrenError', 'WaitingError', 'RateLimitError']);

export { isInfrastructureError } from '../lib/index.js';

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

/**
 * Wrap a processor so that an infrastructure error (see `classifyInfrastructure`) never fails the
 * job nor spends one of its attempts: the job is moved to `delayed` (which does not count an
 * attempt in BullMQ) with exponential backoff and jitter, and processed again from the start.
 * The n-th consecutive infrastructure retry of a job is `attemptsStarted − attemptsMade`.
 * Also answers the reconciler's `nudge` jobs (children added only to wake a parent).
 * @param queue - queue name, for the logs.
 */
export function withInfrastructureRetry(queue: string, processor: Processor, logger: Logger): Processor {
  return async (job, token, signal) => {
    if (job.name === NUDGE_JOB) return { nudged: true };
    try {
      return (await processor(job, token, signal)) as unknown;
    } catch (err) {
      if (isControlFlow(err)) throw err;
      const infrastructure = classifyInfrastructure(err);
      if (!infrastructure) throw err;
      const retry = Math.max(1, job.attemptsStarted - job.attemptsMade);
      const delayMs = infrastructureBackoffMs(retry);
      logger.warn(
        { queue, jobId: job.id, infrastructure, retry, delayMs, err },
        'infrastructure error: the job runs again later, without spending an attempt',
      );
      try {
        await job.moveToDelayed(Date.now() + delayMs, token);
      } catch (moveErr) {
        // Redis itself is down: leave the job to BullMQ (its lock expires, the stalled check or
        // the reconciler brings it back).
        logger.warn({ queue, jobId: job.id, err: moveErr }, 'could not park the job after an infrastructure error');
        throw err;
      }
      throw new DelayedError();
    }
  };
}
