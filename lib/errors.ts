/**
 * Baton's one error taxonomy.
 *
 * Every error we raise on purpose is an {@link AppError} with a stable machine-readable `code`.
 * It is mapped in exactly two places: the HTTP error handler (`services/api/`) turns it into
 * `{error: {code, message, field?}}` with `httpStatus`; the worker adapter (`workers/`) turns it
 * into a BullMQ outcome from `retryable`. Nothing else inspects error classes.
 */

/** Stable, documented error codes (part of the public API). */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'VALIDATION_FAILED'
  | 'DEFINITION_INVALID'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'GONE'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'AGENT_FAILED'
  | 'RETRY_LATER'
  | 'CANCELLED'
  | 'TIMED_OUT'
  | 'UNAVAILABLE'
  | 'OUTPUT_TOO_LARGE'
  | 'MISSING_SECRET'
  | 'OUTBOUND_DENIED'
  | 'RATE_LIMITED'
  | 'EXPRESSION_TIMEOUT'
  | 'RUN_DEPTH_EXCEEDED'
  | 'DEFINITION_TOO_LARGE'
  | 'INPUT_TOO_LARGE'
  | 'IDEMPOTENCY_KEY_REUSED';

interface AppErrorOptions {
  cause?: unknown;
  /** Dotted path of the offending input field, e.g. `input.from`. */
  field?: string;
  details?: Record<string, unknown>;
}

/** Base class: a stable `code`, an HTTP status for the API edge and a retry hint for workers. */
export abstract class AppError extends Error {
  abstract readonly code: ErrorCode;
  abstract readonly httpStatus: number;
  /** Whether repeating the same operation later may succeed. */
  readonly retryable: boolean = false;
  readonly field: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.field = options.field;
    this.details = options.details;
  }
}

/** The environment is invalid; the process must not start. */
export class ConfigError extends AppError {
  readonly code = 'CONFIG_INVALID';
  readonly httpStatus = 500;
}

/** A request body, query, job payload or agent input is invalid. Never retried. */
export class ValidationError extends AppError {
  readonly code = 'VALIDATION_FAILED';
  readonly httpStatus = 400;
}

/** An orchestration definition is invalid; `message` carries file:line:column and the rule. */
export class DefinitionError extends AppError {
  readonly code = 'DEFINITION_INVALID';
  readonly httpStatus = 400;
}

/** The addressed resource does not exist in the caller's organization. */
export class NotFoundError extends AppError {
  readonly code = 'NOT_FOUND';
  readonly httpStatus = 404;
}

/** The resource's current state does not allow the operation (e.g. a decided approval). */
export class ConflictError extends AppError {
  readonly code = 'CONFLICT';
  readonly httpStatus = 409;
}

/** The operation came too late (e.g. a decision after the approval's deadline). */
export class GoneError extends AppError {
  readonly code = 'GONE';
  readonly httpStatus = 410;
}

/** No or invalid credentials. */
export class UnauthorizedError extends AppError {
  readonly code = 'UNAUTHORIZED';
  readonly httpStatus = 401;
}

/** Valid credentials that do not grant this operation (e.g. a token for another approval). */
export class ForbiddenError extends AppError {
  readonly code = 'FORBIDDEN';
  readonly httpStatus = 403;
}

/** An agent decided the task cannot succeed; retrying the same input will not help. */
export class AgentError extends AppError {
  readonly code = 'AGENT_FAILED';
  readonly httpStatus = 502;
}

/** A transient failure (upstream 429/5xx, network); worth another attempt after `retryAfterMs`. */
export class RetryLaterError extends AppError {
  readonly code = 'RETRY_LATER';
  readonly httpStatus = 503;
  override readonly retryable = true;
  /** Suggested wait before the next attempt, in milliseconds, if the upstream said so. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options: AppErrorOptions & { retryAfterMs?: number } = {}) {
    super(message, options);
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** The work was cancelled through its AbortSignal (run cancelled, step timed out, shutdown). */
export class CancelledError extends AppError {
  readonly code = 'CANCELLED';
  readonly httpStatus = 409;
}

/** A step attempt ran past its `timeout` and was aborted; retried per the step's policy. */
export class TimedOutError extends AppError {
  readonly code = 'TIMED_OUT';
  readonly httpStatus = 504;
  override readonly retryable = true;
}

/** A dependency (Redis, Postgres) is not reachable right now. */
export class UnavailableError extends AppError {
  readonly code = 'UNAVAILABLE';
  readonly httpStatus = 503;
  override readonly retryable = true;
}

/**
 * Too many requests: the caller is over a rate limit (`RATE_LIMIT_RUNS_PER_MINUTE`, or its API
 * key's own limit). Answered 429 with `Retry-After: <retryAfterS>`; nothing was changed.
 */
export class RateLimitedError extends AppError {
  readonly code = 'RATE_LIMITED';
  readonly httpStatus = 429;
  override readonly retryable = true;
  /** Whole seconds (≥ 1) until a request may succeed again. */
  readonly retryAfterS: number;

  constructor(message: string, options: AppErrorOptions & { retryAfterS: number }) {
    super(message, options);
    this.retryAfterS = Math.max(1, Math.ceil(options.retryAfterS));
  }
}

/**
 * A step's output (JSON) is larger than `STEP_OUTPUT_MAX_BYTES`, or an asset larger than
 * `ASSET_MAX_BYTES`. Never retried: the same input produces the same output.
 */
export class OutputTooLargeError extends AppError {
  readonly code = 'OUTPUT_TOO_LARGE';
  readonly httpStatus = 413;
}

/** An agent needs a secret (declared in its `secrets:`) that the organization has not stored. */
export class MissingSecretError extends AppError {
  readonly code = 'MISSING_SECRET';
  readonly httpStatus = 400;
}

/**
 * An expression ran longer than `EXPRESSION_TIMEOUT_MS` (JSONata's guard, checked between
 * evaluation steps; regexes run on the linear-time engine, `lib/linear-regexp.ts`). Never retried.
 */
export class ExpressionTimeoutError extends AppError {
  readonly code = 'EXPRESSION_TIMEOUT';
  readonly httpStatus = 422;
}

/** A sub-run would be nested deeper than `MAX_RUN_DEPTH` child runs. Never retried. */
export class RunDepthExceededError extends AppError {
  readonly code = 'RUN_DEPTH_EXCEEDED';
  readonly httpStatus = 422;
}

/** A definition's source is larger than `DEFINITION_MAX_BYTES`, refused before it is parsed. */
export class DefinitionTooLargeError extends AppError {
  readonly code = 'DEFINITION_TOO_LARGE';
  readonly httpStatus = 413;
}

/**
 * The outbound policy refused a destination (loopback, link-local, private or cloud-metadata
 * address not in `OUTBOUND_ALLOW`), checked after DNS resolution and on every redirect.
 */
export class OutboundDeniedError extends AppError {
  readonly code = 'OUTBOUND_DENIED';
  readonly httpStatus = 403;
}

/** A run's input (its JSON text) is larger than `RUN_INPUT_MAX_BYTES`; `field` is `input`. */
export class InputTooLargeError extends AppError {
  readonly code = 'INPUT_TOO_LARGE';
  readonly httpStatus = 413;
}

/**
 * An `Idempotency-Key` already used by the organization for a different request (another
 * definition, version, input or webhook URL); the same request returns the same run instead.
 */
export class IdempotencyKeyReusedError extends AppError {
  readonly code = 'IDEMPOTENCY_KEY_REUSED';
  readonly httpStatus = 422;
}

/** Plain, JSON-safe form of an error, as stored in `steps.error` and `runs.error`. */
export interface SerializedError {
  name: string;
  code: string;
  message: string;
  field?: string;
}

/**
 * Normalise anything thrown into a JSON-safe record (never spreads the error: `message` and
 * `name` are not enumerable on `Error`).
 */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof AppError) {
    return { name: err.name, code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) };
  }
  if (err instanceof Error) return { name: err.name, code: 'INTERNAL', message: err.message };
  return { name: 'Error', code: 'INTERNAL', message: String(err) };
}

/** Exhaustiveness guard for `switch` statements over unions. */
export function assertNever(value: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(value)}`);
}
