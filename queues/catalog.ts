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
  /**
   * The run's definition version (row id), when the enqueuer knew it: lets the claim of a step
   * whose input the definition fixes skip reading the run first (`baton_claim_step_fixed`).
   */
  definitionId: z.uuid().optional(),
});
export type StepJobData = z.infer<typeof StepJobData>;

/** A fan-out item's job (agent queues, name `item`), child of its step's job. */
export const ItemJobData = StepJobData.extend({ index: z.number().int().nonnegative() });
export type ItemJobData = z.infer<typeof ItemJobData>;

/** A checkpoint's reminder (queue `checkpoints`, name `remind`, delayed; nothing waits for it). */
export const RemindJobData = z.object({ approvalId: z.uuid(), runId: z.uuid(), beforeMs: z.number().int().positive() });
export type RemindJobData = z.infer<typeof RemindJobData>;

/** The periodic reconciliation (queue `runs`, name `reconcile`, from a job scheduler). */
export const ReconcileJobData = z.object({});
export type ReconcileJobData = z.infer<typeof ReconcileJobData>;

/**
 * A webhook delivery job: deliver whatever of run `runId` is due, in sequence order (one job per
 * run per batch of events; `seq` is the newest event of the batch, 0 for a retry or a sweep).
 */
export const WebhookJobData = z.object({ runId: z.uuid(), seq: z.number().int().nonnegative() });
export type WebhookJobData = z.infer<typeof WebhookJobData>;

/**
 * Every kind of job Baton runs, with its payload schema and where it lives:
 * - `run`: a run's root job (`runs`), waiting for its step jobs;
 * - `reconcile`: the periodic reconciliation (`runs`);
 * - `step`: an agent step's job (an agent queue), child of the root;
 * - `item`: a fan-out item's job (the step's agent queue), child of its step's job;
 * - `checkpoint`: a checkpoint step's job (`checkpoints`), parked until decided;
 * - `remind`: a checkpoint's reminder (`checkpoints`);
 * - `webhook`: a webhook delivery (`webhooks`).
 * The cancel message (pub/sub, not a job) is {@link CancelMessage}.
 */
export const JOB_PAYLOADS = {
  run: RunJobData,
  reconcile: ReconcileJobData,
  step: StepJobData,
  item: ItemJobData,
  checkpoint: StepJobData,
  remind: RemindJobData,
  webhook: WebhookJobData,
} as const satisfies Record<string, z.ZodType>;

export type JobKind = keyof typeof JOB_PAYLOADS;
export type JobPayload<K extends JobKind> = z.infer<(typeof JOB_PAYLOADS)[K]>;

/** Job names that are not step ids (step jobs are named after their step). */
export const JOB_NAMES = { run: 'run', reconcile: 'reconcile', item: 'item', remind: 'remind', webhook: 'deliver' } as const;

/**
 * The kind of a job from its queue and name.
 * @returns `undefined` for a name that no kind of that queue has.
 */
export function jobKindOf(queue: QueueName, name: string): JobKind | undefined {
  switch (queue) {
    case 'runs':
      return name === JOB_NAMES.run ? 'run' : name === JOB_NAMES.reconcile ? 'reconcile' : undefined;
    case 'checkpoints':
      return name === JOB_NAMES.remind ? 'remind' : 'checkpoint';
    case 'webhooks':
      return name === JOB_NAMES.webhook ? 'webhook' : undefined;
    default:
      return name === JOB_NAMES.item ? 'item' : 'step';
  }
}

/** A request to stop jobs, published to every worker (`cancelChannel`). */
export const CancelMessage = z.object({ jobIds: z.array(z.string()), reason: z.string() });
export type CancelMessage = z.infer<typeof CancelMessage>;

/** Redis channel (under the queue prefix) on which workers receive job cancellations. */
export function cancelChannel(prefix: string): string {
  return `${prefix}:cancel-jobs`;
}

/**
 * Redis channel (under the queue prefix) on which API processes hear that runs have new
 * committed events (message: run ids, comma-separated); see `Queues.announceRunEvents`.
 */
export function runEventsChannel(prefix: string): string {
  return `${prefix}:run-events`;
}

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

/** Job id of a fan-out item: `<run>.<step>.<generation>.i<index>`. */
export function itemJobId(runId: string, stepId: string, generation: number, index: number): string {
  return `${stepJobId(runId, stepId, generation)}.i${index}`;
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

const DAY_S = 24 * 3600;

/** Failed jobs stay a week (at most 10,000 per queue), for Bull Board; Postgres has the record. */
export const REMOVE_ON_FAIL = { age: 7 * DAY_S, count: 10_000 } as const;

/**
 * Retention of finished jobs. By default (`keepCompleted` 0) a completed job leaves Redis at
 * once: Postgres keeps the durable record (steps, attempts, events), so Redis holds only the work
 * still to do, and a repeated add of a finished job's id is harmless because every handler is
 * fenced by Postgres (a finished step's job only acknowledges). `JOBS_KEEP_COMPLETED=N` keeps the
 * last N completed jobs per queue instead (history in Bull Board, or tests that look at them).
 */
export function retention(keepCompleted: number): { removeOnComplete: true | { count: number }; removeOnFail: typeof REMOVE_ON_FAIL } {
  return { removeOnComplete: keepCompleted > 0 ? { count: keepCompleted } : true, removeOnFail: REMOVE_ON_FAIL };
}

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
