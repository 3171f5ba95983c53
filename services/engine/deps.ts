/** What the engine needs from its host process (API or worker), injected by the entry file. */
import type { Config, Logger, ShutdownRegistry } from '../../lib/index.js';
import { createDatabase, type Database } from '../../db/index.js';
import { Queues, createRedis } from '../../queues/index.js';
import type { AgentType } from '../../agents/types.js';
import { configureDefinitionLimits } from '../../definitions/index.js';

export interface EngineDeps {
  config: Config;
  database: Database;
  queues: Queues;
  logger: Logger;
  /**
   * Agent types of agents registered in code (tests), by name. Catalog agents live per
   * organization in the database (`services/store/agents.ts`); definitions are validated against
   * both, so `services/` never loads agent code (only the `AgentType` type).
   */
  agentTypes: ReadonlyMap<string, AgentType>;
}

/**
 * Open the engine's clients for an entry process — a Postgres pool, a producer Redis connection
 * and the queues over it — and register each with `shutdown` (closed in reverse order). Applies
 * the configured definition and expression limits (`definitions/limits.ts`) to the process.
 * @param options.applicationName - Postgres `application_name` (`baton-web`, `baton-worker`, …).
 * @param options.poolMax - Postgres connections (default `DATABASE_POOL_MAX`).
 * @param options.failFast - the API: Redis commands fail after `REDIS_COMMAND_TIMEOUT_MS` and at
 *   once while disconnected (see `createRedis`), instead of waiting for a reconnection.
 */
export function connectEngine(
  config: Config,
  logger: Logger,
  shutdown: ShutdownRegistry,
  options: { applicationName: string; poolMax?: number; failFast?: boolean },
): EngineDeps {
  const { limits } = config;
  configureDefinitionLimits({
    maxBytes: limits.definitionMaxBytes,
    maxSteps: limits.definitionMaxSteps,
    expressionMaxBytes: limits.expressionMaxBytes,
    expressionTimeoutMs: limits.expressionTimeoutMs,
  });
  const database = createDatabase(config.postgres.url, { max: options.poolMax ?? config.postgres.poolMax, applicationName: options.applicationName });
  shutdown.register('postgres', () => database.close());
  const producer = createRedis(config.redis.url, 'producer', options.failFast ? { commandTimeoutMs: config.redis.commandTimeoutMs } : {});
  shutdown.register('redis-producer', () => producer.quit());
  const queues = new Queues(producer, config.redis.prefix, logger, { keepCompletedJobs: config.redis.keepCompletedJobs });
  shutdown.register('queues', () => queues.close());
  return { config, database, queues, logger, agentTypes: new Map() };
}
