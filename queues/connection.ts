/** Redis connections with BullMQ's production settings (research/bullmq-design.md §4.7). */
import { Redis, type RedisOptions } from 'ioredis';

/**
 * - `worker`: blocking consumers; BullMQ requires `maxRetriesPerRequest: null` (retry forever).
 * - `producer`: API and engine writes; fail fast so a request answers 503 instead of hanging.
 * - `subscriber`: pub/sub only.
 */
export type RedisRole = 'worker' | 'producer' | 'subscriber';

/** Options of {@link createRedis}. */
export interface RedisConnectOptions {
  /**
   * Producers only: reject a command that has no reply after this long (ms), and reject at once
   * (no offline queue) while disconnected — for the API, whose answers must not wait for Redis
   * (BullMQ "Failing fast when Redis is down"). Unset: commands wait for a reconnection.
   */
  commandTimeoutMs?: number;
}

/** Open a Redis connection for a role. The caller owns it and must `quit()` it. */
export function createRedis(url: string, role: RedisRole, options: RedisConnectOptions = {}): Redis {
  const failFast = role === 'producer' && options.commandTimeoutMs !== undefined;
  const redisOptions: RedisOptions = {
    connectionName: `baton-${role}`,
    maxRetriesPerRequest: role === 'producer' ? 2 : null,
    // Never give up reconnecting; cap the wait between tries at 2 s.
    retryStrategy: (times) => Math.min(times * 100, 2000),
    ...(failFast ? { commandTimeout: options.commandTimeoutMs, enableOfflineQueue: false } : {}),
  };
  return new Redis(url, redisOptions);
}
