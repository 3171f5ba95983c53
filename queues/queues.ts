/**
 * Producers: the `Queue` instances and `FlowProducer` of one process, and the typed ways to add
 * Baton's jobs. Every step job is a child of its run's root job with an explicit failure policy.
 */
import { ErrorCode as BullErrorCode, FlowProducer, Queue, type FlowJob, type JobState, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { UnavailableError, withinMs, type Logger } from '../lib/index.js';
import {
  JOB_NAMES,
  NUDGE_JOB,
  cancelChannel,
  runEventsChannel,
  QUEUE_NAMES,
  REMOVE_ON_FAIL,
  retention,
  queueForStepType,
  stepJobId,
  webhookJobId,
  type QueueName,
  type StepJobData,
  type StepType,
} from './catalog.js';
import { STEP_BACKOFF } from './workers.js';

/** What the engine needs to enqueue one step generation. */
export interface StepJobSpec {
  stepId: string;
  type: StepType;
  generation: number;
  /** Total tries BullMQ may make (1 = no retry). */
  attempts: number;
  backoffMs: number;
  maxDelayMs: number;
  /** The run's definition version (row id), carried in the job's data when known (see `StepJobData`). */
  definitionId?: string;
}

/**
 * A job to add after a transaction commits (see `Queues.addAll`):
 * - `step`: a step generation's job, child of the run's root job `rootId`;
 * - `item`: a fan-out item's job (`<step job id>.i<index>`), child of its step's job;
 * - `remind`: a checkpoint's reminder.
 */
export type JobRequest =
  | { kind: 'step'; runId: string; rootId: string; spec: StepJobSpec }
  | { kind: 'item'; runId: string; parentJobId: string; spec: StepJobSpec; index: number }
  /** A checkpoint's reminder, run `delayMs` from now (id `remind.<approval>.<beforeMs>`). */
  | { kind: 'remind'; approvalId: string; runId: string; beforeMs: number; delayMs: number };

/** A job as the reconciler sees it: its state (or `missing`), name and raw payload. */
export interface JobInspection {
  queue: QueueName;
  id: string;
  /** `unknown`: the job's hash exists but it is in no state (a partial loss of Redis data). */
  state: JobState | 'unknown' | 'missing';
  name: string | undefined;
  data: unknown;
  failedReason: string | undefined;
}

/** A child a parent job still waits for (a member of its `dependencies` set). */
export interface ChildRef {
  queue: QueueName;
  id: string;
}

/** How long a Redis PING may take before {@link Queues.ensureAvailable} answers unavailable, in milliseconds. */
export const AVAILABILITY_PROBE_MS = 400;
/**
 * How long a successful probe vouches for Redis, in milliseconds: at most one PING per this
 * interval per process, and the window in which a request may pass the check just after Redis
 * froze (it then takes the committed-run edge, see `startRun`).
 */
export const AVAILABILITY_FRESH_MS = 200;

/** Options of the root job (`runs` queue): it only reads Postgres, so retry generously. */
const ROOT_OPTIONS: JobsOptions = {
  attempts: 12, // exponential from 1 s: the last retry comes ~34 min after the first failure
  backoff: { type: 'exponential', delay: 1000 },
};

function stepJob(runId: string, s: StepJobSpec, kept: ReturnType<typeof retention>): { name: string; queueName: QueueName; data: StepJobData; opts: JobsOptions } {
  return {
    name: s.stepId,
    queueName: queueForStepType(s.type),
    data: {
      runId,
      stepId: s.stepId,
      generation: s.generation,
      backoffMs: s.backoffMs,
      maxDelayMs: s.maxDelayMs,
      ...(s.definitionId === undefined ? {} : { definitionId: s.definitionId }),
    },
    opts: {
      jobId: stepJobId(runId, s.stepId, s.generation),
      attempts: s.attempts,
      backoff: { type: STEP_BACKOFF },
      // A step that fails for good must not leave the root waiting forever (bullmq#3362):
      // the root wakes and Postgres, not BullMQ, decides what the failure means for the run.
      ignoreDependencyOnFailure: true,
      ...kept,
    },
  };
}

/** The queues of one process, sharing one producer connection. */
export class Queues {
  private readonly queues = new Map<QueueName, Queue>();
  readonly flows: FlowProducer;

  /** What finished jobs leave behind (see `retention`). */
  private readonly kept: ReturnType<typeof retention>;

  /**
   * @param connection - a `producer` Redis connection (see `createRedis`); not closed by `close()`.
   * @param prefix - BullMQ key prefix (`QUEUE_PREFIX`).
   * @param options.keepCompletedJobs - completed jobs kept per queue (`JOBS_KEEP_COMPLETED`; 0: none).
   */
  constructor(
    readonly connection: Redis,
    readonly prefix: string,
    private readonly logger: Logger,
    options: { keepCompletedJobs?: number } = {},
  ) {
    this.kept = retention(options.keepCompletedJobs ?? 0);
    for (const name of QUEUE_NAMES) {
      const queue = new Queue(name, { connection, prefix });
      queue.on('error', (err) => logger.error({ err, queue: name }, 'queue error'));
      this.queues.set(name, queue);
    }
    this.flows = new FlowProducer({ connection, prefix });
    this.flows.on('error', (err) => logger.error({ err }, 'flow producer error'));
  }

  private availableUntil = 0;
  private probe: Promise<void> | undefined;
  /** Runs with events committed since the last announcement (see `announceRunEvents`). */
  private readonly announced = new Set<string>();

  /**
   * Tell every API process that run `runId` has new committed events (it wakes the run's SSE
   * streams). Call only after the commit, so a listener never reads before the rows are
   * visible. Announcements of one turn of the event loop go out as one `PUBLISH`; never throws
   * (a lost announcement delays a stream until its safety poll, `routes-runs.ts`).
   *
   * This replaced a `NOTIFY` per event from a trigger on `run_events` (migrations 0001, 0017):
   * Postgres serialises every committing transaction that has notifications under one lock held
   * through its WAL flush, which held the hot path to one fsync at a time (the bench's no-op
   * throughput rose from ~640 to ~850 steps/s without it).
   */
  announceRunEvents(runId: string): void {
    const first = this.announced.size === 0;
    this.announced.add(runId);
    if (!first) return;
    setImmediate(() => {
      const message = [...this.announced].join(',');
      this.announced.clear();
      this.connection.publish(runEventsChannel(this.prefix), message).catch((err: unknown) => {
        this.logger.warn({ err }, 'could not announce run events (streams catch up at their next poll)');
      });
    });
  }

  /**
   * Hear {@link announceRunEvents} of every process: `onRuns` gets the run ids of each message.
   * Subscribes on a connection of its own, which waits for Redis (a process starts while Redis
   * is down, and hears announcements once it is back) and is re-subscribed by ioredis after a
   * reconnection.
   * @returns a function that unsubscribes and closes that connection.
   */
  subscribeRunEvents(onRuns: (runIds: string[]) => void): () => void {
    const subscriber = this.connection.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined });
    subscriber.on('error', (err) => this.logger.warn({ err }, 'run-events subscriber error'));
    const channel = runEventsChannel(this.prefix);
    subscriber.on('message', (from: string, message: string) => {
      if (from === channel) onRuns(message.split(',').filter((id) => id.length > 0));
    });
    subscriber.subscribe(channel).catch((err: unknown) => this.logger.error({ err, channel }, 'could not subscribe to run events'));
    return () => subscriber.disconnect();
  }

  /**
   * Check that Redis answers before a change that will need it (starting a run, an intervention,
   * a decision), so that a request fails before it changes anything rather than after. The
   * connection must be `ready` and answer a PING within {@link AVAILABILITY_PROBE_MS}; a success
   * is trusted for {@link AVAILABILITY_FRESH_MS}, and concurrent callers share one PING.
   * @throws {UnavailableError} when Redis is disconnected or does not answer in time.
   */
  async ensureAvailable(): Promise<void> {
    const { status } = this.connection;
    if (status !== 'ready') {
      this.availableUntil = 0;
      throw new UnavailableError(`Redis is unavailable (connection ${status}); retry later`);
    }
    if (Date.now() < this.availableUntil) return;
    this.probe ??= this.ping().finally(() => {
      this.probe = undefined;
    });
    await this.probe;
  }

  private async ping(): Promise<void> {
    try {
      await withinMs(this.connection.ping(), AVAILABILITY_PROBE_MS, 'Redis does not answer PING');
      this.availableUntil = Date.now() + AVAILABILITY_FRESH_MS;
    } catch (err) {
      this.availableUntil = 0;
      throw new UnavailableError('Redis does not answer; retry later', { cause: err });
    }
  }

  /** The `Queue` named `name`. */
  get(name: QueueName): Queue {
    const queue = this.queues.get(name);
    if (!queue) throw new Error(`unknown queue ${name}`);
    return queue;
  }

  /** Every queue, in `QUEUE_NAMES` order (for Bull Board and metrics). */
  all(): Queue[] {
    return [...this.queues.values()];
  }

  /** Qualified name of the `runs` queue, as BullMQ expects in `opts.parent.queue`. */
  get runsQueueQualifiedName(): string {
    return `${this.prefix}:runs`;
  }

  /**
   * Create a run's flow: the root job (`rootId`, see `rootJobId`) in `runs`, with the ready steps
   * as children. Idempotent: every node has a deterministic id.
   * @param parent - for a sub-orchestration, the step job the child run's root belongs to.
   */
  async addRunFlow(rootId: string, runId: string, ready: StepJobSpec[], parent?: { id: string; queue: string }): Promise<void> {
    const flow: FlowJob = {
      name: 'run',
      queueName: 'runs',
      data: { runId },
      opts: {
        jobId: rootId,
        ...ROOT_OPTIONS,
        ...this.kept,
        // A child run's root must not leave its parent step waiting forever if it fails for good.
        ...(parent ? { parent, ignoreDependencyOnFailure: true } : {}),
      },
      children: ready.map((s) => stepJob(runId, s, this.kept)),
    };
    await this.flows.add(flow);
  }

  /** Qualified name of a queue, as BullMQ expects in `opts.parent.queue`. */
  qualifiedName(name: QueueName): string {
    return `${this.prefix}:${name}`;
  }

  /**
   * Add jobs in one Redis round trip: one job with `Queue.add` (one script call; BullMQ's child
   * of an existing parent, `opts.parent`), several in one `MULTI` through `FlowProducer.addBulk`
   * — the same `addJob` script either way, and the single add (the hot path's successor) costs
   * ~0.08 instead of ~0.2 ms of CPU. Step and item jobs must be added while a job of their
   * family is still active (the caller's own step job, or the root), so their parent cannot
   * complete in between. An id that exists is left as is.
   */
  async addAll(requests: readonly JobRequest[]): Promise<void> {
    const [only] = requests;
    if (only === undefined) return;
    if (requests.length === 1) {
      const job = this.flowOf(only);
      await this.get(job.queueName).add(job.name, job.data, job.opts);
      return;
    }
    await this.flows.addBulk(requests.map((r) => this.flowOf(r)));
  }

  private flowOf(r: JobRequest): FlowJob & { queueName: QueueName } {
    switch (r.kind) {
      case 'step': {
        const job = stepJob(r.runId, r.spec, this.kept);
        return { ...job, opts: { ...job.opts, parent: { id: r.rootId, queue: this.runsQueueQualifiedName } } };
      }
      case 'item': {
        const queueName = queueForStepType(r.spec.type);
        const { stepId, generation, backoffMs, maxDelayMs, attempts } = r.spec;
        return {
          name: JOB_NAMES.item,
          queueName,
          data: { runId: r.runId, stepId, generation, backoffMs, maxDelayMs, index: r.index },
          opts: {
            jobId: `${r.parentJobId}.i${r.index}`,
            parent: { id: r.parentJobId, queue: this.qualifiedName(queueName) },
            attempts,
            backoff: { type: STEP_BACKOFF },
            ignoreDependencyOnFailure: true,
            ...this.kept,
          },
        };
      }
      case 'remind':
        return {
          name: JOB_NAMES.remind,
          queueName: 'checkpoints',
          data: { approvalId: r.approvalId, runId: r.runId, beforeMs: r.beforeMs },
          opts: {
            jobId: `remind.${r.approvalId}.${r.beforeMs}`,
            delay: r.delayMs,
            attempts: 5,
            backoff: { type: 'exponential', delay: 1000 },
            removeOnComplete: true,
            removeOnFail: { age: 7 * 24 * 3600 },
          },
        };
    }
  }

  /**
   * Add step jobs as children of the run's root job `rootId`. Must be called while the caller's own
   * child job (or the root itself) is still active, so the root cannot complete in between.
   * A job id that already exists is left untouched.
   */
  async addStepJobs(rootId: string, runId: string, specs: StepJobSpec[]): Promise<void> {
    await this.addAll(specs.map((spec) => ({ kind: 'step' as const, runId, rootId, spec })));
  }


  /**
   * Add fan-out item jobs (`<step job id>.i<index>`) as children of the step's job, in the step's
   * queue, with the step's retry policy. Must be called while a job of that family is active.
   */
  async addItemJobs(parentJobId: string, step: StepJobSpec & { runId: string }, indexes: number[]): Promise<void> {
    await this.addAll(indexes.map((index) => ({ kind: 'item' as const, runId: step.runId, parentJobId, spec: step, index })));
  }

  // --- webhook delivery jobs (owned by the webhooks work, services/engine/webhooks.ts) ---
  /**
   * Enqueue one webhook delivery job for a batch of run events `seqs` (id `wh.<runId>.<newest
   * seq>`). The job delivers everything of the run that is due, in order; delivery retries are
   * scheduled by the engine, so the job itself retries only on infrastructure errors.
   */
  async addWebhookDeliveries(runId: string, seqs: number[]): Promise<void> {
    if (seqs.length === 0) return;
    const seq = Math.max(...seqs);
    await this.addWebhookJob(runId, seq, webhookJobId(runId, seq));
  }

  /**
   * Enqueue a webhook delivery job with id `jobId`, run no sooner than `delayMs` from now.
   * An existing job id is left untouched.
   */
  async addWebhookJob(runId: string, seq: number, jobId: string, delayMs = 0): Promise<void> {
    await this.get('webhooks').add(
      JOB_NAMES.webhook,
      { runId, seq },
      {
        jobId,
        ...(delayMs > 0 ? { delay: delayMs } : {}),
        attempts: 10,
        backoff: { type: 'exponential', delay: 1000 },
        // Postgres keeps the delivery log: a finished job has nothing left to tell.
        removeOnComplete: true,
        removeOnFail: REMOVE_ON_FAIL,
      },
    );
  }

  /**
   * Wake delayed job `id` of `queue` now (a parked checkpoint). A job that is not delayed (not
   * parked yet, or already woken) is left alone.
   */
  async promote(queue: QueueName, id: string): Promise<void> {
    try {
      // One round trip: the promote script by id (a job that is missing or not delayed answers
      // JobNotInState), without first reading the job's hash as `Job.promote` needs.
      await this.get(queue).backend.promote(id);
    } catch (err) {
      if ((err as { code?: number }).code !== BullErrorCode.JobNotInState) throw err;
    }
  }

  /**
   * Stop jobs: remove the ones not running (a removed child releases its parent) and broadcast
   * a cancel (`CancelMessage`) for the active ones, whose workers abort their AbortSignal.
   */
  async stopJobs(jobs: ReadonlyArray<{ queue: QueueName; id: string }>, reason: string): Promise<void> {
    const active: string[] = [];
    for (const ref of jobs) {
      const job = await this.get(ref.queue).getJob(ref.id);
      if (!job) continue;
      const state = await job.getState();
      if (state === 'active') {
        active.push(ref.id);
        continue;
      }
      if (state === 'completed' || state === 'failed') continue;
      try {
        await job.remove();
      } catch {
        // It became active (locked) between our look and the removal: cancel it instead.
        active.push(ref.id);
      }
    }
    if (active.length > 0) await this.connection.publish(cancelChannel(this.prefix), JSON.stringify({ jobIds: active, reason }));
  }
  // --- end webhook delivery jobs ---

  /** The state, name and payload of job `id` in `queue`. */
  async inspectJob(queue: QueueName, id: string): Promise<JobInspection> {
    const job = await this.get(queue).getJob(id);
    if (!job) return { queue, id, state: 'missing', name: undefined, data: undefined, failedReason: undefined };
    const state = await job.getState();
    // A hash re-created by a late write after its keys were deleted has no name and no data.
    const data = job.name ? (job.data as unknown) : undefined;
    return { queue, id, state, name: job.name || undefined, data, failedReason: job.failedReason || undefined };
  }

  /**
   * The children parent job `parentId` (in `queue`) still waits for, read from its
   * `dependencies` set (so also children whose own keys are gone).
   */
  async pendingChildren(queue: QueueName, parentId: string): Promise<ChildRef[]> {
    const keys = await this.connection.smembers(`${this.prefix}:${queue}:${parentId}:dependencies`);
    const head = `${this.prefix}:`;
    return keys.flatMap((key) => {
      if (!key.startsWith(head)) return [];
      const rest = key.slice(head.length);
      const colon = rest.indexOf(':');
      const name = rest.slice(0, colon) as QueueName;
      return colon > 0 && (QUEUE_NAMES as readonly string[]).includes(name) ? [{ queue: name, id: rest.slice(colon + 1) }] : [];
    });
  }

  /**
   * Remove job `id` (not its children). A child leaves its parent's `dependencies`; if it was
   * the last one, BullMQ moves the parent to `wait`.
   * @returns false when the job is locked by a worker (it is running) or could not be removed.
   */
  async removeJob(queue: QueueName, id: string): Promise<boolean> {
    const job = await this.get(queue).getJob(id);
    if (!job) return true;
    try {
      await job.remove({ removeChildren: false });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Wake parent `parentId` (in `queue`), stuck in `waiting-children` with nothing pending: add a
   * no-op child (`NUDGE_JOB`, answered by every worker) whose completion moves it to `wait`.
   */
  async nudge(queue: QueueName, parentId: string): Promise<void> {
    await this.get(queue).add(
      NUDGE_JOB,
      {},
      {
        jobId: `nudge.${parentId}.${Date.now()}`,
        parent: { id: parentId, queue: this.qualifiedName(queue) },
        removeOnComplete: true,
        removeOnFail: true,
      },
    );
  }

  /** Close every queue and the flow producer (not the shared connection). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.all().map((q) => q.close()), this.flows.close()]);
  }
}
