/**
 * The worker pool of one process: a handler for every job kind, consumed from the agent queues
 * it serves plus the engine's own queues (`runs`, `checkpoints`, `webhooks`).
 */
import type { Redis } from 'ioredis';
import type { AgentType } from '../agents/index.js';
import { AGENT_QUEUES, startConsumers, type JobHandlers, type WorkerPool } from '../queues/index.js';
import { createCheckpointHandler, createRemindHandler } from './checkpoint-processor.js';
import type { WorkerDeps } from './deps.js';
import { createReconcileHandler, createRunHandler } from './run-processor.js';
import { createItemHandler, createStepHandler } from './step-processor.js';
import { createWebhookHandler } from './webhook-processor.js';

export type { WorkerPool } from '../queues/index.js';

/*
 * Stalled-job settings (research/bullmq-design.md §4.5): a worker killed mid-step loses its
 * lock after `lockDurationMs`; another worker's stalled check (every `stalledIntervalMs`) puts
 * the job back. `maxStalledCount` (STALLED_MAX_COUNT, default 2) lets a step survive that many
 * crashes before BullMQ fails it for good (BullMQ's default, 1, fails it on the second crash
 * regardless of `attempts`); the attempt fence in Postgres keeps re-deliveries from recording
 * twice. A job failed this way fails its step when the root next checks (ensureStepJobs).
 */

/** Every job kind's handler. */
export function jobHandlers(deps: WorkerDeps): JobHandlers {
  return {
    run: createRunHandler(deps),
    reconcile: createReconcileHandler(deps),
    step: createStepHandler(deps),
    item: createItemHandler(deps),
    checkpoint: createCheckpointHandler(deps),
    remind: createRemindHandler(deps),
    webhook: createWebhookHandler(deps),
  };
}

/**
 * @param connection - a `worker` Redis connection (`maxRetriesPerRequest: null`).
 * @param agentTypes - agent queues to serve.
 */
export function startWorkers(deps: WorkerDeps, connection: Redis, agentTypes: readonly AgentType[]): WorkerPool {
  const { config, logger } = deps;
  return startConsumers(
    {
      connection,
      prefix: config.redis.prefix,
      lockDurationMs: config.worker.lockDurationMs,
      stalledIntervalMs: config.worker.stalledIntervalMs,
      maxStalledCount: config.worker.maxStalledCount,
      reconcileIntervalMs: config.worker.reconcileIntervalMs,
      queues: [
        ...agentTypes.map((t) => ({ queue: AGENT_QUEUES[t], concurrency: config.worker.concurrency })),
        { queue: 'checkpoints' as const, concurrency: 50 },
        { queue: 'runs' as const, concurrency: 50 },
        { queue: 'webhooks' as const, concurrency: 20 },
      ],
    },
    deps.queues,
    jobHandlers(deps),
    logger,
  );
}
