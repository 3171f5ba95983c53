/**
 * Start BullMQ workers for a set of agent types plus the engine's own queues (`runs`,
 * `checkpoints`, `webhooks`). One `Worker` per queue; each holds two Redis connections.
 */
import { hostname } from 'node:os';
import { Worker, type Processor } from 'bullmq';
import type { Redis } from 'ioredis';
import type { AgentType } from '../agents/index.js';
import { z } from 'zod';
import { AGENT_QUEUES } from '../queues/index.js';
import { cancelChannel } from '../services/engine/index.js';
import { createCheckpointProcessor } from './checkpoint-processor.js';
import type { WorkerDeps } from './deps.js';
import { stepBackoffStrategy, withInfrastructureRetry } from './failure.js';
import { RECONCILE_JOB, createRunProcessor } from './run-processor.js';
import { createStepProcessor } from './step-processor.js';
import { createWebhookProcessor } from './webhook-processor.js';
import { withWebhookMetrics } from './observability.js'; // observability hook

export interface WorkerPool {
  workers: Worker[];
  /** Stop fetching, wait for active jobs, close connections. */
  close(): Promise<void>;
}

/*
 * Stalled-job settings (research/bullmq-design.md §4.5): a worker killed mid-step loses its
 * lock after `lockDurationMs`; another worker's stalled check (every `stalledIntervalMs`) puts
 * the job back. `maxStalledCount` (STALLED_MAX_COUNT, default 2) lets a step survive that many
 * crashes before BullMQ fails it for good (BullMQ's default, 1, fails it on the second crash
 * regardless of `attempts`); the attempt fence in Postgres keeps re-deliveries from recording
 * twice. A job failed this way fails its step when the root next checks (ensureStepJobs).
 */

const CancelMessage = z.object({ jobIds: z.array(z.string()), reason: z.string() });

/**
 * @param connection - a `worker` Redis connection (`maxRetriesPerRequest: null`); BullMQ
 *   duplicates it for each worker's blocking reads.
 * @param agentTypes - agent queues to serve.
 */
export function startWorkers(deps: WorkerDeps, connection: Redis, agentTypes: readonly AgentType[]): WorkerPool {
  const { config, logger } = deps;
  const common = {
    connection,
    prefix: config.redis.prefix,
    lockDuration: config.worker.lockDurationMs,
    stalledInterval: config.worker.stalledIntervalMs,
    maxStalledCount: config.worker.maxStalledCount,
  };
  const specs: Array<{ queue: string; processor: Processor; concurrency: number }> = [
    ...agentTypes.map((t) => ({ queue: AGENT_QUEUES[t], processor: createStepProcessor(deps), concurrency: config.worker.concurrency })),
    { queue: 'checkpoints', processor: createCheckpointProcessor(deps), concurrency: 50 },
    { queue: 'runs', processor: createRunProcessor(deps), concurrency: 50 },
    { queue: 'webhooks', processor: withWebhookMetrics(createWebhookProcessor(deps)), concurrency: 20 }, // observability hook
  ];
  const workers = specs.map(({ queue, processor, concurrency }) => {
    const worker = new Worker(queue, withInfrastructureRetry(queue, processor, logger), {
      ...common,
      concurrency,
      name: `${queue}@${hostname()}:${process.pid}`,
      // Called only for the custom `STEP_BACKOFF` type; built-in types keep BullMQ's own.
      settings: { backoffStrategy: stepBackoffStrategy },
    });
    worker.on('error', (err) => logger.error({ err, queue }, 'worker error'));
    // A job whose lock could not be renewed may already run elsewhere: stop this copy.
    worker.on('lockRenewalFailed', (ids) => ids.forEach((id) => worker.cancelJob(id, 'lock lost')));
    worker.on('failed', (job, err) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) logger.warn({ queue, jobId: job.id, err }, 'job failed');
    });
    return worker;
  });
  // One scheduler for the whole deployment (upsert is idempotent across workers and restarts).
  deps.queues
    .get('runs')
    .upsertJobScheduler(
      RECONCILE_JOB,
      { every: config.worker.reconcileIntervalMs },
      { name: RECONCILE_JOB, data: {}, opts: { removeOnComplete: true, removeOnFail: 100 } },
    )
    .catch((err: unknown) => logger.error({ err }, 'could not schedule reconciliation'));
  // Cancellations (run cancelled, step skipped or retried): abort the job here if it runs here.
  const subscriber = connection.duplicate();
  const channel = cancelChannel(config.redis.prefix);
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
      await Promise.allSettled(workers.map((w) => w.close()));
      subscriber.disconnect();
    },
  };
}
