/**
 * The status vocabularies of the durable record, declared once. The schema types its columns
 * with them (`text(…, { enum })`), so a misspelt status is a compile error;
 * `services/engine/statuses.ts` adds the predicates and the failure codes.
 */

/**
 * A run: `(throttled) → queued → running → (cancelling) → completed | failed | cancelled`;
 * `throttled` = waiting for a slot of its definition's `concurrency:` limit (no jobs yet).
 */
export const RUN_STATUSES = ['throttled', 'queued', 'running', 'cancelling', 'completed', 'failed', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/**
 * A step (one row per step of a run): `pending → queued → running → (waiting) → completed |
 * failed | skipped | cancelled`; `compensation` marks a step that runs only when the run is
 * aborted (named by another step's `compensate:`).
 */
export const STEP_STATUSES = ['pending', 'queued', 'running', 'waiting', 'completed', 'failed', 'skipped', 'cancelled', 'compensation'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

/** One execution of a step; `lost` = superseded by a re-delivery after a crash or a lost lock. */
export const ATTEMPT_STATUSES = ['running', 'completed', 'failed', 'timed_out', 'lost', 'cancelled'] as const;
export type AttemptStatus = (typeof ATTEMPT_STATUSES)[number];

/** One item of a fan-out step: `pending → queued → running → completed | failed | cancelled`. */
export const ITEM_STATUSES = ['pending', 'queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type ItemStatus = (typeof ITEM_STATUSES)[number];

/** A checkpoint's approval: `pending → decided | expired | cancelled` (its step was skipped, retried or its run cancelled). */
export const APPROVAL_STATUSES = ['pending', 'decided', 'expired', 'cancelled'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];
