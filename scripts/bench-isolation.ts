/**
 * Where the bench puts its data, away from everything else sharing the Redis and Postgres: the
 * database `<db>_bench` and the queue prefixes `<QUEUE_PREFIX>-bench` (Baton) and
 * `<QUEUE_PREFIX>-bench-raw` (raw BullMQ), and how they are removed.
 */
import { Redis } from 'ioredis';
import postgres from 'postgres';
import type { Config } from '../lib/index.js';
import { deletePrefix } from './bench-measure.js';

/** The bench's database and queue prefixes. */
export interface BenchTargets {
  /** Name of the bench database. */
  database: string;
  /** Connection URL of the bench database. */
  databaseUrl: string;
  /** Connection URL of the `postgres` maintenance database (to create and drop the bench database). */
  adminUrl: string;
  redisUrl: string;
  /** Baton's queue prefix. */
  prefix: string;
  /** Raw BullMQ's queue prefix. */
  rawPrefix: string;
}

/** The bench's targets, derived from the configuration (`DATABASE_URL`, `REDIS_URL`, `QUEUE_PREFIX`). */
export function benchTargets(config: Config): BenchTargets {
  const databaseUrl = new URL(config.postgres.url);
  const database = `${databaseUrl.pathname.replace(/^\//, '') || 'baton'}_bench`;
  databaseUrl.pathname = `/${database}`;
  const adminUrl = new URL(config.postgres.url);
  adminUrl.pathname = '/postgres';
  const prefix = `${config.redis.prefix}-bench`;
  return { database, databaseUrl: databaseUrl.toString(), adminUrl: adminUrl.toString(), redisUrl: config.redis.url, prefix, rawPrefix: `${prefix}-raw` };
}

/** Drop the bench database (disconnecting its sessions) and delete every key of both prefixes. */
export async function removeBenchData(targets: BenchTargets): Promise<void> {
  const sql = postgres(targets.adminUrl, { max: 1, onnotice: () => undefined });
  await sql.unsafe(`drop database if exists "${targets.database}" with (force)`).finally(() => sql.end({ timeout: 2 }));
  const redis = new Redis(targets.redisUrl, { maxRetriesPerRequest: null, connectionName: 'bench-cleanup' });
  try {
    await deletePrefix(redis, targets.prefix);
    await deletePrefix(redis, targets.rawPrefix);
  } finally {
    redis.disconnect();
  }
}
