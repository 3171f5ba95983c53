/**
 * Consumers: BullMQ `Worker`s for Baton's queues, and the one place where a handler's
 * {@link Directive} becomes a BullMQ call. Handlers (in `workers/`) see a typed
 * {@link JobContext}, never a BullMQ `Job`, and answer what should happen to their own job:
 * acknowledge it, wait for its children, park it until a time, retry it, or fail it.
 *
 * Two things are decided here for every job:
 * - an infrastructure error (our own Redis or Postgres failing, `lib/infrastructure.ts`) never
 *   fails the job nor spends an attempt: the job is parked in `delayed` with backoff and jitter
 *   (BullMQ does not count that as an attempt) and runs again from the start;
 * - a job whose lock could not be renewed (Redis unreachable, or the job stalled and runs
 *   elsewhere) is aborted with an infrastructure error as the signal's reason, so the copy here
 *   stops without recording a failure of the work (see {@link lockLossAsInfrastructure});
 * - the reconciler's `nudge` children are acknowledged by every worker.
 */
import { hostname } from 'node:os';
import { DelayedError, UnrecoverableError, WaitingChildrenError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { UnavailableError, classifyInfrastructure, infrastructureBackoffMs, type Logger } from '../lib/index.js';
import {
  CancelMessage,
  JOB_NAMES,
  JOB_PAYLOADS,
  NUDGE_JOB,
  cancelChannel,
  jobKindOf,
  stepBackoffMs,
  type JobKind,
  type JobPayload,
  type QueueName,
  type StepJobData,
} from './catalog.js';
import type { Queues } from './queues.js';

/** What a handler sees of its job. */
export interface JobContext<K extends JobKind> {
  kind: K;
  queue: QueueName;
  id: string;
  /** The payload, validated against the kind's schema. */
  data: JobPayload<K>;
  /** Attempts BullMQ finished before this one (0 on the first). */
  attemptsMade: number;
  /** Attempts the job may make in all (1 = no retry). */
  attempts: number;
  /** Aborted when the job is cancelled (run cancelled, step skipped or retried, lock lost). */
  signal: AbortSignal | undefined;
}

/** What should happen to the handler's own job. */
export type Directive =
  /** Done: acknowledge, with a small summary kept as the job's return value. */
  | { kind: 'ack'; result?: Record<string, unknown> }
  /**
   * Wait in `waiting-children` until every child is done, then run the handler again. If no
   * child is pending the handler runs again at once (at most {@link MAX_CHILD_PASSES} times,
   * then after {@link RECHECK_MS}).
   */
  | { kind: 'wait-children' }
  /** Park in `delayed` until `untilMs` (epoch ms), then run again; `afterParking` runs once parked. */
  | { kind: 'park'; untilMs: number; afterParking?: () => Promise<void> }
  /**
   * This attempt failed and another follows: after `delayMs` (the step's own backoff) or, when
   * absent, after the job's configured backoff.
   */
  | { kind: 'retry'; reason: string; delayMs?: number }
  /** Failed for good: no further attempt. */
  | { kind: 'fail'; reason: string };

/** A handler of one job kind. */
export type JobHandler<K extends JobKind> = (job: JobContext<K>) => Promise<Directive>;

/** One handler per job kind: the compiler demands each. */
export type JobHandlers = { [K in JobKind]: JobHandler<K> };

/** Passes of a `wait-children` directive with no pending child before the job is parked. */
export const MAX_CHILD_PASSES = 5;
/** Delay before such a job runs again, in milliseconds. */
export const RECHECK_MS = 1000;

/** Name of the custom backoff strategy registered on every worker (step jobs use it). */
export const STEP_BACKOFF = 'baton-step';

/** Thrown to BullMQ to request a retry after exactly `delayMs` (read by the backoff strategy). */
class RetryScheduled extends Error {
  constructor(
    message: string,
    readonly delayMs: number,
  ) {
    super(message);
    this.name = 'RetryScheduled';
  }
}

const CONTROL_FLOW = new Set(['DelayedError', 'WaitingChildrenError', 'WaitingError', 'RateLimitError']);

function isControlFlow(err: unknown): boolean {
  return err instanceof Error && CONTROL_FLOW.has(err.name);
}

/**
 * BullMQ backoff strategy for step jobs: the delay a `retry` directive chose, or (for failures
 * that bypassed it) the step's own exponential backoff.
 */
export function stepBackoffStrategy(attemptsMade: number, _type?: string, err?: Error, job?: { data?: unknown }): number {
  if (err instanceof RetryScheduled) return err.delayMs;
  const data = job?.data as Partial<StepJobData> | undefined;
  return stepBackoffMs(attemptsMade, data?.backoffMs ?? 1000, data?.maxDelayMs ?? 60_000);
}

/** Worker settings shared by every queue. */
export interface ConsumerOptions {
  connection: Redis;
  prefix: string;
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxStalledCount: number;
  /** Every queue to consume, with its concurrency (jobs at once per process). */
  queues: ReadonlyArray<{ queue: QueueName; concurrency: number }>;
  /** Interval of the reconciliation job scheduler, in milliseconds. */
  reconcileIntervalMs: number;
}

export interface WorkerPool {
  workers: Worker[];
  /** Stop fetching, wait for active jobs, close connections. */
  close(): Promise<void>;
}

/** Carry out a directive on the BullMQ job (returns its value, or throws BullMQ's control flow). */
async function apply(directive: Directive, job: Job, token: string | undefined, again: () => Promise<Directive>): Promise<Record<string, unknown>> {
  let current = directive;
  for (let pass = 1; ; pass += 1) {
    switch (current.kind) {
      case 'ack':
        return current.result ?? {};
      case 'wait-children':
        if (await job.moveToWaitingChildren(token ?? '')) throw new WaitingChildrenError();
        if (pass >= MAX_CHILD_PASSES) {
          // Children unfinished but none attached (e.g. lost with Redis data): look again
          // shortly, without spending an attempt, while the reconciler repairs.
          await job.moveToDelayed(Date.now() + RECHECK_MS, token);
          throw new DelayedError();
        }
        current = await again();
        continue;
      case 'park':
        await job.moveToDelayed(current.untilMs, token);
        await current.afterParking?.();
        throw new DelayedError();
      case 'retry':
        throw current.delayMs === undefined ? new Error(current.reason) : new RetryScheduled(current.reason, current.delayMs);
      case 'fail':
        throw new UnrecoverableError(current.reason);
    }
  }
}

/** The abort reason BullMQ's signal carries when this worker lost a job's lock. */
const LOCK_LOST = 'lock lost';

/**
 * The signal a handler sees: BullMQ's, except that a lost lock aborts it with an
 * {@link UnavailableError} (an infrastructure error) rather than the bare `LOCK_LOST` string.
 * A lost lock says nothing about the work: either Redis is unreachable (the reconciler, or the
 * stalled check once it is back, delivers the job again) or the job was judged stalled and
 * another worker already runs it (its fenced claim wins). Either way the attempt here must stop
 * without recording a failure; the handler rethrows the reason (`workers/step-processor.ts`) and
 * the infrastructure path above leaves the job to run again. Recording it as `CANCELLED` is what
 * failed steps for good during a Redis restart.
 */
function lockLossAsInfrastructure(signal: AbortSignal, jobId: string): AbortSignal {
  const controller = new AbortController();
  const forward = () => {
    controller.abort(
      signal.reason === LOCK_LOST
        ? new UnavailableError(`the lock on job ${jobId} was lost (Redis unreachable, or the job stalled and runs elsewhere): this copy stops`)
        : signal.reason,
    );
  };
  if (signal.aborted) forward();
  else signal.addEventListener('abort', forward, { once: true });
  return controller.signal;
}

/**
 * Start one BullMQ `Worker` per queue, dispatching each job to the handler of its kind; schedule
 * the periodic reconciliation; and subscribe to cancellations (abort the job here if it runs here).
 * @param options.connection - a `worker` Redis connection (`maxRetriesPerRequest: null`);
 *   BullMQ duplicates it for each worker's blocking reads.
 */
export function startConsumers(options: ConsumerOptions, queues: Queues, handlers: JobHandlers, logger: Logger): WorkerPool {
  const processorFor = (queue: QueueName) => async (job: Job, token?: string, signal?: AbortSignal): Promise<Record<string, unknown>> => {
    if (job.name === NUDGE_JOB) return { nudged: true };
    const kind = jobKindOf(queue, job.name);
    if (!kind) throw new UnrecoverableError(`job ${job.id}: no job kind "${job.name}" in queue ${queue}`);
    const parsed = JOB_PAYLOADS[kind].safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`job ${job.id}: invalid ${kind} payload: ${parsed.error.message}`);
    const jobSignal = signal === undefined ? undefined : lockLossAsInfrastructure(signal, job.id ?? '');
    const context = { kind, queue, id: job.id ?? '', data: parsed.data, attemptsMade: job.attemptsMade, attempts: job.opts.attempts ?? 1, signal: jobSignal };
    // The mapped type cannot be narrowed by `kind` at runtime; the payload was parsed for it.
    const run = () => (handlers[kind] as JobHandler<JobKind>)(context);
    try {
      return await apply(await run(), job, token, run);
    } catch (err) {
      if (isControlFlow(err)) throw err;
      const infrastructure = classifyInfrastructure(err);
      if (!infrastructure) throw err;
      const retry = Math.max(1, job.attemptsStarted - job.attemptsMade);
      const delayMs = infrastructureBackoffMs(retry);
      logger.warn({ queue, jobId: job.id, infrastructure, retry, delayMs, err }, 'infrastructure error: the job runs again later, without spending an attempt');
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

  const workers = options.queues.map(({ queue, concurrency }) => {
    const worker = new Worker(queue, processorFor(queue), {
      connection: options.connection,
      prefix: options.prefix,
      lockDuration: options.lockDurationMs,
      stalledInterval: options.stalledIntervalMs,
      maxStalledCount: options.maxStalledCount,
      concurrency,
      name: `${queue}@${hostname()}:${process.pid}`,
      // Called only for the custom `STEP_BACKOFF` type; built-in types keep BullMQ's own.
      settings: { backoffStrategy: stepBackoffStrategy },
    });
    worker.on('error', (err) => logger.error({ err, queue }, 'worker error'));
    // A job whose lock could not be renewed may already run elsewhere: stop this copy.
    worker.on('lockRenewalFailed', (ids) => ids.forEach((id) => worker.cancelJob(id, LOCK_LOST)));
    worker.on('failed', (job, err) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) logger.warn({ queue, jobId: job.id, err }, 'job failed');
    });
    return worker;
  });
  // One scheduler for the whole deployment (upsert is idempotent across workers and restarts),
  // upserted again on every reconnection: a Redis that restarted empty lost it, and with it
  // the reconciliation that re-creates every unfinished run's jobs from Postgres.
  const scheduleReconciliation = () => {
    queues
      .get('runs')
      .upsertJobScheduler(JOB_NAMES.reconcile, { every: options.reconcileIntervalMs }, { name: JOB_NAMES.reconcile, data: {}, opts: { removeOnComplete: true, removeOnFail: 100 } })
      .catch((err: unknown) => logger.error({ err }, 'could not schedule reconciliation'));
  };
  scheduleReconciliation();
  queues.connection.on('ready', scheduleReconciliation);
  const subscriber = options.connection.duplicate();
  const channel = cancelChannel(options.prefix);
  subscriber.on('error', (err) => logger.error({ err }, 'cancel subscriber error'));
  subscriber.on('message', (_channel: string, message: string) => {
    let json: unknown;
    try {
      json = JSON.parse(message);
    } catch {
      json = undefined;
    }
    const parsed = CancelMessage.safeParse(json);
    if (!parsed.success) return logger.warn({ message }, 'ignoring malformed cancel message');
    for (const id of parsed.data.jobIds) for (const w of workers) w.cancelJob(id, parsed.data.reason);
  });
  subscriber.subscribe(channel).catch((err: unknown) => logger.error({ err, channel }, 'could not subscribe to cancellations'));
  return {
    workers,
    async close() {
      queues.connection.off('ready', scheduleReconciliation);
      await Promise.allSettled(workers.map((w) => w.close()));
      subscriber.disconnect();
    },
  };
}
