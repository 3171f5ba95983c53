/**
 * Infrastructure errors: failures of Baton's own Redis or Postgres, as opposed to a step's agent
 * failing. They say nothing about the work, so they never spend a step's attempts: the worker
 * adapter retries them with backoff outside the step's `retry` policy, and the HTTP error handler
 * answers them 503 with `Retry-After`.
 *
 * An {@link AppError} is a decision someone made (an agent's `RetryLaterError`, a validation
 * failure…) and is never reclassified here — except {@link UnavailableError}, which is this
 * category by definition. Anything else is classified by walking its `cause` chain (drizzle wraps
 * driver errors in `DrizzleQueryError` with the driver's error as `cause`).
 */
import { AppError, UnavailableError } from './errors.js';

/** Which dependency failed. */
export type InfrastructureKind = 'postgres' | 'redis' | 'network';

/** A classified infrastructure failure. */
export interface InfrastructureFailure {
  kind: InfrastructureKind;
  /** The code or message fragment that matched, e.g. `57P01`, `ECONNREFUSED`. */
  reason: string;
}

/** Socket-level errno codes (Node `net`): the peer is unreachable or went away. */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/** postgres.js connection error codes. */
const POSTGRES_CLIENT_CODES: ReadonlySet<string> = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
]);

/**
 * Postgres SQLSTATEs worth repeating: too many clients, admin/crash shutdown, cannot connect now
 * (starting up or shutting down), serialization failure, deadlock, and a transaction ended for
 * idling (`idle_in_transaction_session_timeout`, db/client.ts). Class 08 (connection exception)
 * is matched as a class.
 */
const POSTGRES_SQLSTATES: ReadonlySet<string> = new Set(['53300', '57P01', '57P02', '57P03', '40001', '40P01', '25P03']);

/** BullMQ's error when a job is added under a parent whose key Redis no longer has. */
export const MISSING_PARENT_KEY = 'Missing key for parent job';

/**
 * Message fragments of Redis / ioredis / BullMQ failures that carry no code. "Missing lock" and
 * "Missing key for job" mean this copy of a job no longer owns it (its lock expired and another
 * worker took it, or Redis lost it): the copy must stop without recording anything.
 */
const REDIS_MESSAGES: readonly string[] = [
  MISSING_PARENT_KEY,
  'Missing lock for job',
  'Missing key for job',
  'Connection is closed',
  'Command timed out',
  'Reached the max retries per request limit',
  "Stream isn't writeable",
  'LOADING Redis is loading',
  'READONLY You can',
];

function classifyOne(err: object): InfrastructureFailure | undefined {
  const { code, name, message } = err as { code?: unknown; name?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code)) return { kind: 'network', reason: code };
    if (POSTGRES_CLIENT_CODES.has(code)) return { kind: 'postgres', reason: code };
    if (POSTGRES_SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return { kind: 'postgres', reason: code };
  }
  if (name === 'MaxRetriesPerRequestError') return { kind: 'redis', reason: String(name) };
  if (typeof message === 'string') {
    const fragment = REDIS_MESSAGES.find((m) => message.includes(m));
    if (fragment) return { kind: 'redis', reason: fragment };
  }
  return undefined;
}

/**
 * Classify `err` as an infrastructure failure, or `undefined` when it is the work's own failure.
 * Looks at the error, its `cause` chain (at most 8 deep) and the members of an `AggregateError`.
 */
export function classifyInfrastructure(err: unknown): InfrastructureFailure | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 8 && current !== null && typeof current === 'object'; depth += 1) {
    if (current instanceof UnavailableError) {
      return classifyInfrastructure(current.cause) ?? { kind: 'network', reason: current.code };
    }
    if (current instanceof AppError) return undefined;
    const found = classifyOne(current);
    if (found) return found;
    if (current instanceof AggregateError) {
      for (const inner of current.errors) {
        const innerFound = classifyInfrastructure(inner);
        if (innerFound) return innerFound;
      }
    }
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Whether `err` is an infrastructure failure (see {@link classifyInfrastructure}). */
export function isInfrastructureError(err: unknown): boolean {
  return classifyInfrastructure(err) !== undefined;
}

/** SQLSTATEs of a transaction Postgres rolled back to break a conflict: serialization failure, deadlock. */
const TRANSACTION_CONFLICTS: ReadonlySet<string> = new Set(['40001', '40P01']);

/**
 * Whether `err` is a transaction conflict (40001 serialization failure, 40P01 deadlock): the
 * transaction was rolled back as a whole and running it again is the remedy.
 */
export function isTransactionConflict(err: unknown): boolean {
  const reason = classifyInfrastructure(err)?.reason;
  return reason !== undefined && TRANSACTION_CONFLICTS.has(reason);
}

/**
 * Delay before the n-th retry of an infrastructure failure: exponential from `baseMs`, capped at
 * `maxDelayMs`, with equal jitter (at least half the computed delay).
 * @param retry - retries so far (≥ 1).
 * @param random - a number in [0, 1) (injectable for tests).
 * @returns the delay, in milliseconds.
 */
export function infrastructureBackoffMs(retry: number, baseMs = 500, maxDelayMs = 15_000, random = Math.random()): number {
  const exponential = Math.min(maxDelayMs, baseMs * 2 ** Math.max(0, Math.min(30, retry - 1)));
  return Math.round(exponential / 2 + (exponential / 2) * random);
}

/**
 * `promise`, or an {@link UnavailableError} (`message`) once `timeoutMs` passed without it
 * settling. The promise itself is not cancelled: whatever it does still happens later.
 * @param timeoutMs - milliseconds.
 */
export function withinMs<T>(promise: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UnavailableError(`${message} (no answer within ${timeoutMs} ms)`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
