/**
 * The run-creation rate limit (`POST /v1/runs`, real starts only): a fixed one-minute window per
 * organization, counted in Redis by `rate-limiter-flexible` so every API node shares it.
 *
 * - Bucket: the organization (`<QUEUE_PREFIX>:ratelimit:runs:org:<organizationId>`) with
 *   `RATE_LIMIT_RUNS_PER_MINUTE` points. An API key created with `rateLimitRunsPerMinute` has a
 *   bucket of its own with that limit (`…:runs:key:<keyId>`) and does not draw on the
 *   organization's: the override raises or lowers what that one key may start, and its
 *   starts never starve the organization's other keys. `0` turns a limit off.
 * - Headers on every answer of a real start, as draft-ietf-httpapi-ratelimit-headers-06
 *   (§§ 3–5, the last revision with separate fields; -07 folded them into `RateLimit`):
 *   `RateLimit-Limit` (points per window), `RateLimit-Remaining`, `RateLimit-Reset` (seconds
 *   until the window resets) and `RateLimit-Policy: <limit>;w=60`.
 * - Over the limit: {@link RateLimitedError} (429 `RATE_LIMITED`, `Retry-After` in whole seconds).
 * - Redis not ready or slower than {@link LIMITER_TIMEOUT_MS}: {@link UnavailableError} (503) at
 *   once, never a hang: the start would need Redis for its flow anyway.
 */
import type { Response } from 'express';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { RateLimitedError, UnavailableError, withinMs } from '../../lib/index.js';
import type { Principal } from './auth.js';

/** The window of `RATE_LIMIT_RUNS_PER_MINUTE`, in seconds. */
export const RUN_RATE_WINDOW_S = 60;
/**
 * Longest wait for Redis's answer before the request is refused with 503, in milliseconds: a
 * Redis that is down is refused at once (`rejectIfRedisNotReady`); this bounds one that hangs,
 * within the 2 s a start may take to answer 503, with room for event-loop lag under load.
 */
export const LIMITER_TIMEOUT_MS = 1500;

/** Which bucket a principal draws on, and its size (`0`: unlimited). */
function bucketOf(principal: Principal, organizationLimit: number): { key: string; points: number } {
  if (principal.rateLimitRunsPerMinute !== null) {
    return { key: `key:${principal.keyId}`, points: principal.rateLimitRunsPerMinute };
  }
  return { key: `org:${principal.organizationId}`, points: organizationLimit };
}

/** Counts run starts per bucket in Redis (see module doc). */
export class RunRateLimiter {
  /** One limiter per bucket size (the organization limit, and each distinct key override). */
  private readonly limiters = new Map<number, RateLimiterRedis>();

  /**
   * @param redis - the process's producer connection (fails fast; not closed here).
   * @param prefix - the deployment's `QUEUE_PREFIX`.
   * @param organizationLimit - `RATE_LIMIT_RUNS_PER_MINUTE` (`0`: off).
   */
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly organizationLimit: number,
  ) {}

  private limiter(points: number): RateLimiterRedis {
    let limiter = this.limiters.get(points);
    if (!limiter) {
      limiter = new RateLimiterRedis({
        storeClient: this.redis,
        keyPrefix: `${this.prefix}:ratelimit:runs`,
        points,
        duration: RUN_RATE_WINDOW_S,
        rejectIfRedisNotReady: true,
      });
      this.limiters.set(points, limiter);
    }
    return limiter;
  }

  /**
   * Take one run start from the principal's bucket and set the RateLimit headers on `res`.
   * @throws {RateLimitedError} the bucket is empty (headers and `retryAfterS` say when it refills).
   * @throws {UnavailableError} Redis is not ready or does not answer within {@link LIMITER_TIMEOUT_MS}.
   */
  async consume(principal: Principal, res: Pick<Response, 'set'>): Promise<void> {
    const { key, points } = bucketOf(principal, this.organizationLimit);
    if (points <= 0) return;
    let outcome: RateLimiterRes;
    let limited = false;
    try {
      outcome = await withinMs(this.limiter(points).consume(key, 1), LIMITER_TIMEOUT_MS, 'the rate limiter (Redis) did not answer');
    } catch (err: unknown) {
      if (!(err instanceof RateLimiterRes)) {
        throw new UnavailableError('the rate limiter (Redis) is unavailable; the run was not started, retry later', { cause: err });
      }
      outcome = err;
      limited = true;
    }
    const resetS = Math.max(1, Math.ceil(outcome.msBeforeNext / 1000));
    res.set({
      'RateLimit-Limit': String(points),
      'RateLimit-Remaining': String(Math.max(0, outcome.remainingPoints)),
      'RateLimit-Reset': String(resetS),
      'RateLimit-Policy': `${points};w=${RUN_RATE_WINDOW_S}`,
    });
    if (limited) {
      throw new RateLimitedError(`too many runs started: at most ${points} per ${RUN_RATE_WINDOW_S} s; retry in ${resetS} s`, {
        retryAfterS: resetS,
        details: { limit: points, windowSeconds: RUN_RATE_WINDOW_S, retryAfterSeconds: resetS },
      });
    }
  }
}
