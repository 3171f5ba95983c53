/**
 * Statuses and failure codes of runs, steps, attempts, items and approvals: the vocabularies
 * (declared once in `db/statuses.ts`, which types the schema's columns), the predicates the
 * engine decides with, and the {@link FailureCode}s recorded in `runs.error` / `steps.error`.
 */
import type { SerializedError } from '../../lib/index.js';
import type { RunStatus, StepStatus } from '../../db/index.js';

export {
  APPROVAL_STATUSES,
  ATTEMPT_STATUSES,
  ITEM_STATUSES,
  RUN_STATUSES,
  STEP_STATUSES,
  type ApprovalStatus,
  type AttemptStatus,
  type ItemStatus,
  type RunStatus,
  type StepStatus,
} from '../../db/index.js';

/** A run that ended: it never changes again unless reopened (resume, retry). */
export function isRunFinished(status: RunStatus): status is 'completed' | 'failed' | 'cancelled' {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

/** A run whose steps may start. */
export function isRunActive(status: RunStatus): status is 'queued' | 'running' {
  return status === 'queued' || status === 'running';
}

/** Runs that hold a slot of their definition's `concurrency:` limit (admitted, not finished). */
export const RUN_IN_PROGRESS_STATUSES = ['queued', 'running', 'cancelling'] as const satisfies readonly RunStatus[];

/** A run that holds a concurrency slot: admitted and not finished. */
export function isRunInProgress(status: RunStatus): status is (typeof RUN_IN_PROGRESS_STATUSES)[number] {
  return (RUN_IN_PROGRESS_STATUSES as readonly string[]).includes(status);
}

/** A run waiting for a concurrency slot: no step may start, no job exists. */
export function isRunThrottled(status: RunStatus): status is 'throttled' {
  return status === 'throttled';
}

/** A step that will not change again in this generation. */
export function isStepFinished(status: StepStatus): status is 'completed' | 'failed' | 'skipped' | 'cancelled' {
  return status === 'completed' || status === 'failed' || status === 'skipped' || status === 'cancelled';
}

/** A step that has (or must have) a live BullMQ job. */
export function isStepLive(status: StepStatus): status is 'queued' | 'running' | 'waiting' {
  return status === 'queued' || status === 'running' || status === 'waiting';
}

/**
 * Why a step or a run failed, with who is to act: `user` — the work itself (its definition,
 * input, agent, or a person's decision); `system` — Baton or its infrastructure (a job BullMQ
 * gave up on, an internal error). Agent and validation errors keep their `AppError` code
 * (`lib/errors.ts`), which are all `user` failures except `INTERNAL` and `UNAVAILABLE`.
 */
export const FAILURE_CODES = {
  /** A step failed for good (the run's error; the step's own error has the cause). */
  STEP_FAILED: 'user',
  /** A person (or a checkpoint's deadline) aborted. */
  APPROVAL_ABORTED: 'user',
  /** The run was cancelled. */
  CANCELLED: 'user',
  /** The step's `with:` mapping failed against the run's data. */
  INPUT_MAPPING_FAILED: 'user',
  /** The definition's `output:` mapping failed. */
  OUTPUT_MAPPING_FAILED: 'user',
  /** A secret the step names is not stored. */
  MISSING_SECRET: 'user',
  /** A sub-orchestration's child run did not complete. */
  CHILD_RUN_FAILED: 'user',
  /** The step ran past its `timeout`. */
  TIMED_OUT: 'user',
  /** An expression ran past `EXPRESSION_TIMEOUT_MS`. */
  EXPRESSION_TIMEOUT: 'user',
  /** A sub-run would be nested deeper than `MAX_RUN_DEPTH`; it was not started. */
  RUN_DEPTH_EXCEEDED: 'user',
  /** BullMQ failed the step's job without the processor reporting (e.g. it stalled too often). */
  JOB_FAILED: 'system',
  /** An unexpected error inside Baton. */
  INTERNAL: 'system',
} as const satisfies Record<string, 'user' | 'system'>;

/** A failure code the engine records on runs and steps. */
export type FailureCode = keyof typeof FAILURE_CODES;

/** A failure the engine records on a step or a run, with one of the typed codes. */
export function engineFailure(code: FailureCode, name: string, message: string): SerializedError {
  return { name, code, message };
}
