/**
 * Isolation for one test run: a fresh database `baton_test_<random>` (created, migrated,
 * seeded and synced by the real release) and a queue prefix `baton-test-<random>`. Both are
 * removed when the run ends (set KEEP_TEST_DB=1 to keep the database for inspection).
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { Redis } from 'ioredis';
import { loadConfig, silentLogger, type Config } from '../../lib/index.js';
import { release } from '../../scripts/release.js';

export interface TestEnvironment {
  /** Environment variables for child processes (web, worker) of this test run. */
  env: Record<string, string>;
  config: Config;
  organizationId: string;
}

const BASE_DB = process.env.TEST_DATABASE_BASE_URL ?? 'postgres://postgres@127.0.0.1:5432';
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

let shared: Promise<TestEnvironment> | undefined;
let created: TestEnvironment | undefined;

/** The test run's environment, created on first use. */
export function testEnvironment(): Promise<TestEnvironment> {
  shared ??= (async () => {
    const id = randomBytes(4).toString('hex');
    const env: Record<string, string> = {
      NODE_ENV: 'test',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      DATABASE_URL: `${BASE_DB}/baton_test_${id}`,
      REDIS_URL,
      QUEUE_PREFIX: `baton-test-${id}`,
      BATON_API_KEY: `test_key_${randomBytes(12).toString('hex')}`,
      BATON_ADMIN_API_KEY: `test_admin_${randomBytes(12).toString('hex')}`,
      BATON_WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
      // Short lock and stall check, so a killed worker's job is recovered within seconds.
      STEP_LOCK_DURATION_MS: '3000',
      STALLED_INTERVAL_MS: '1000',
      SHUTDOWN_TIMEOUT_MS: '5000',
      // Keep finished jobs, so tests can look at their BullMQ states (production removes them).
      JOBS_KEEP_COMPLETED: '1000',
      // No run-start limit except where a test sets one (test/rate-limits.test.ts).
      RATE_LIMIT_RUNS_PER_MINUTE: '0',
    };
    const config = loadConfig(env);
    const report = await release(config, silentLogger());
    created = { env, config, organizationId: report.organizationId };
    return created;
  })();
  return shared;
}

/** Remove the test database and every Redis key of the prefix. */
export async function destroyTestEnvironment(): Promise<void> {
  if (!created) return;
  const { config } = created;
  const redis = new Redis(config.redis.url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${config.redis.prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  if (process.env.KEEP_TEST_DB === '1') return;
  const name = new URL(config.postgres.url).pathname.slice(1);
  const admin = postgres(`${BASE_DB}/postgres`, { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}
