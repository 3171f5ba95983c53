/**
 * Queue names, job payloads and job options: the transport contract between the API, the
 * engine and the workers. Jobs carry ids only; inputs and outputs live in Postgres.
 */
import { z } from 'zod';

/** Agent-type queues, one per agent type. */
export const AGENT_QUEUES = {
  context: 'agent-context',
  api: 'agent-api',
  tool: 'agent-tool',
  function: 'agent-function',
  orchestrator: 'agent-orchestrator',
} as const;

/** Every queue Baton uses (SPEC R3a). */
export const QUEUE_NAMES = ['runs', ...Object.values(AGENT_QUEUES), 'checkpoints', 'webhooks'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];
export type StepQueueName = (typeof AGENT_QUEUES)[keyof typeof AGENT_QUEUES] | 'checkpoints';

/** Step types as written in definitions. */
export type StepType = keyof typeof AGENT_QUEUES | 'checkpoint';

/** The queue that executes steps of `type`. */
export function queueForStepType(type: StepType): StepQueueName {
  return type === 'checkpoint' ? 'checkpoints' : AGENT_QUEUES[type];
}

/** Root job of a run (queue `runs`, job id = run id). Processed once every step job is done. */
export const RunJobData = z.object({ runId: z.uuid() });
export type RunJobData = z.infer<typeof RunJobData>;

/** A step job (agent queues and `checkpoints`), child of its run's root job. */
export const StepJobData = z.object({
  runId: z.uuid(),
  stepId: z.string().min(1),
  generation: z.number().int().positive(),
  /** Retry backoff base and cap for this step (from its `retry:` policy), in milliseconds. */
  backoffMs: z.number().int().nonnegative(),
  maxDelayMs: z.number().int().nonnegative(),
});
export type StepJobData = z.infer<typeof StepJobData>;

/**
 * A webhook delivery job: deliver whatever of run `runId` is due, in sequence order (one job per
 * run per batch of events; `seq` is the newest event of the batch, 0 for a retry or a sweep).
 */
export const WebhookJobData = z.object({ runId: z.uuid(), seq: z.number().int().nonnegative() });
export type WebhookJobData = z.infer<typeof WebhookJobData>;

/**
 * Deterministic step job id `<runId>.<stepId>.<generation>` (SPEC R3): a repeated add of the
 * same step generation is a no-op. Contains no `:` and is never all digits (BullMQ rules).
 */
export function stepJobId(runId: string, stepId: string, generation: number): string {
  return `${runId}.${stepId}.${generation}`;
}

/**
 * Root job id of a run's `rootGeneration`-th opening: the run id itself, then `<runId>.r<n>`
 * after a finished run is reopened (resume, retry), since a finished root cannot take children.
 */
export function rootJobId(runId: string, rootGeneration: number): string {
  return rootGeneration <= 1 ? runId : `${runId}.r${rootGeneration}`;
}

/**
 * Webhook delivery job id `wh.<runId>.<tag>`: `<seq>` of the batch's newest event, or a tag such
 * as `t<epoch ms>` for a retry due then. A repeated add of the same id is a no-op.
 */
export function webhookJobId(runId: string, tag: number | string): string {
  return `wh.${runId}.${tag}`;
}

/**
 * Name of a no-op child job the reconciler adds under a parent stuck in `waiting-children` with
 * nothing left to wait for: its completion moves the parent to `wait` (every worker answers it).
 */
export const NUDGE_JOB = 'nudge';

/** Name of the custom backoff strategy registered on every step worker. */
export const STEP_BACKOFF = 'baton-step';

const DAY_S = 24 * 3600;

/**
 * Retention of finished jobs. Long enough that a repeated add of a recent job id is still a
 * no-op and Bull Board shows recent history; Postgres keeps the durable record.
 */
export const RETENTION = {
  removeOnComplete: { age: 7 * DAY_S, count: 50_000 },
  removeOnFail: { age: 30 * DAY_S, count: 50_000 },
} as const;

/**
 * Exponential backoff with full jitter, capped: `min(maxDelayMs, baseMs · 2^(n−1)) · U(0.5, 1)`
 * for the n-th retry ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015 — the
 * "equal jitter" variant, which keeps at least half of the computed delay).
 * @param attemptsMade - attempts already made (≥ 1).
 * @param random - a number in [0, 1) (injectable for tests).
 * @returns the delay before the next attempt, in milliseconds.
 */
export function stepBackoffMs(attemptsMade: number, baseMs: number, maxDelayMs: number, random = Math.random()): number {
  const exponential = Math.min(maxDelayMs, baseMs * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(exponential / 2 + (exponential / 2) * random);
}
