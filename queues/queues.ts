/**
 * Producers: the `Queue` instances and `FlowProducer` of one process, and the typed ways to add
 * Baton's jobs. Every step job is a child of its run's root job with an explicit failure policy.
 */
import { FlowProducer, Queue, type FlowJob, type JobState, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../lib/index.js';
import {
  NUDGE_JOB,
  QUEUE_NAMES,
  RETENTION,
  STEP_BACKOFF,
  queueForStepType,
  stepJobId,
  webhookJobId,
  type QueueName,
  type StepJobData,
  type StepType,
} from './catalog.js';

/** What the engine needs to enqueue one step generation. */
export interface StepJobSpec {
  stepId: string;
  type: StepType;
  generation: number;
  /** Total tries BullMQ may make (1 = no retry). */
  attempts: number;
  backoffMs: number;
  maxDelayMs: number;
}

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

/** Options of the root job (`runs` queue): it only reads Postgres, so retry generously. */
const ROOT_OPTIONS: JobsOptions = {
  attempts: 12, // exponential from 1 s: the last retry comes ~34 min after the first failure
  backoff: { type: 'exponential', delay: 1000 },
  ...RETENTION,
};

function stepJob(runId: string, s: StepJobSpec): { name: string; queueName: string; data: StepJobData; opts: JobsOptions } {
  return {
    name: s.stepId,
    queueName: queueForStepType(s.type),
    data: { runId, stepId: s.stepId, generation: s.generation, backoffMs: s.backoffMs, maxDelayMs: s.maxDelayMs },
    opts: {
      jobId: stepJobId(runId, s.stepId, s.generation),
      attempts: s.attempts,
      backoff: { type: STEP_BACKOFF },
      // A step that fails for good must not leave the root waiting forever (bullmq#3362):
      // the root wakes and Postgres, not BullMQ, decides what the failure means for the run.
      ignoreDependencyOnFailure: true,
      ...RETENTION,
    },
  };
}

/** The queues of one process, sharing one producer connection. */
export class Queues {
  private readonly queues = new Map<QueueName, Queue>();
  readonly flows: FlowProducer;

  /**
   * @param connection - a `producer` Redis connection (see `createRedis`); not closed by `close()`.
   * @param prefix - BullMQ key prefix (`QUEUE_PREFIX`).
   */
  constructor(
    readonly connection: Redis,
    readonly prefix: string,
    logger: Logger,
  ) {
    for (const name of QUEUE_NAMES) {
      const queue = new Queue(name, { connection, prefix });
      queue.on('error', (err) => logger.error({ err, queue: name }, 'queue error'));
      this.queues.set(name, queue);
    }
    this.flows = new FlowProducer({ connection, prefix });
    this.flows.on('error', (err) => logger.error({ err }, 'flow producer error'));
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
        // A child run's root must not leave its parent step waiting forever if it fails for good.
        ...(parent ? { parent, ignoreDependencyOnFailure: true } : {}),
      },
      children: ready.map((s) => stepJob(runId, s)),
    };
    await this.flows.add(flow);
  }

  /** Qualified name of a queue, as BullMQ expects in `opts.parent.queue`. */
  qualifiedName(name: QueueName): string {
    return `${this.prefix}:${name}`;
  }

  /**
   * Add step jobs as children of the run's root job `rootId`. Must be called while the caller's own
   * child job (or the root itself) is still active, so the root cannot complete in between.
   * A job id that already exists is left untouched.
   */
  async addStepJobs(rootId: string, runId: string, specs: StepJobSpec[]): Promise<void> {
    await Promise.all(
      specs.map((s) => {
        const job = stepJob(runId, s);
        return this.get(job.queueName as QueueName).add(job.name, job.data, {
          ...job.opts,
          parent: { id: rootId, queue: this.runsQueueQualifiedName },
        });
      }),
    );
  }

  /**
   * Add fan-out item jobs (`<step job id>.i<index>`) as children of the step's job, in the step's
   * queue, with the step's retry policy. Must be called while a job of that family is active.
   */
  async addItemJobs(parentJobId: string, step: StepJobSpec & { runId: string }, indexes: number[]): Promise<void> {
    const queueName = queueForStepType(step.type);
    await Promise.all(
      indexes.map((index) =>
        this.get(queueName).add(
          'item',
          { runId: step.runId, stepId: step.stepId, generation: step.generation, backoffMs: step.backoffMs, maxDelayMs: step.maxDelayMs, index },
          {
            jobId: `${parentJobId}.i${index}`,
            parent: { id: parentJobId, queue: this.qualifiedName(queueName) },
            attempts: step.attempts,
            backoff: { type: STEP_BACKOFF },
            ignoreDependencyOnFailure: true,
            ...RETENTION,
          },
        ),
      ),
    );
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
      'deliver',
      { runId, seq },
      {
        jobId,
        ...(delayMs > 0 ? { delay: delayMs } : {}),
        attempts: 10,
        backoff: { type: 'exponential', delay: 1000 },
        // Postgres keeps the delivery log: a finished job has nothing left to tell.
        removeOnComplete: true,
        removeOnFail: RETENTION.removeOnFail,
      },
    );
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
