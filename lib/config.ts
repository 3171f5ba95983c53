/**
 * Process configuration: the only module that reads `process.env`.
 *
 * `loadConfig(env)` validates the environment with one zod schema and returns a grouped,
 * frozen object. Importing this module reads nothing and never exits; entry files call
 * `loadConfig()` and turn a {@link ConfigError} into a one-line message and exit code 1.
 */
import { z } from 'zod';
import { ConfigError } from './errors.js';

/** Development-only API key, used when `BATON_API_KEY` is unset outside production. */
export const DEV_API_KEY = 'baton_dev_key_do_not_use_in_production';
/** Development-only webhook secret (`whsec_` + base64 of 32 fixed bytes), outside production. */
export const DEV_WEBHOOK_SECRET = `whsec_${Buffer.from('baton-development-webhook-secret!').toString('base64')}`;

/** An optional absolute URL; an empty value counts as unset. */
const optionalUrl = z.preprocess(
  (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
  z.url({ error: 'expected an absolute URL such as http://host:port' }).optional(),
);

const Env = z.object({
  NODE_ENV: z
    .enum(['development', 'test', 'production'], { error: 'expected development, test or production' })
    .default('development'),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      error: 'expected one of fatal, error, warn, info, debug, trace, silent',
    })
    .default('info'),
  PORT: z.coerce
    .number({ error: 'expected a TCP port number' })
    .int({ error: 'expected a TCP port number' })
    .min(0, { error: 'expected a TCP port between 0 and 65535' })
    .max(65535, { error: 'expected a TCP port between 0 and 65535' })
    .default(3000),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\/.+/, { error: 'expected a postgres:// connection URL' })
    .default('postgres://postgres@127.0.0.1:5432/baton'),
  DATABASE_POOL_MAX: z.coerce
    .number({ error: 'expected a positive integer' })
    .int()
    .positive({ error: 'expected a positive integer' })
    .default(20),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\/.+/, { error: 'expected a redis:// or rediss:// connection URL' })
    .default('redis://127.0.0.1:6379'),
  QUEUE_PREFIX: z
    .string()
    .regex(/^(\{[a-zA-Z0-9_-]+\}|[a-zA-Z0-9_-]+)$/, {
      error: 'expected letters, digits, "-" or "_", optionally wrapped in {braces} as a Redis Cluster hash tag',
    })
    .default('baton'),
  BATON_API_KEY: z
    .string()
    .min(16, { error: 'expected an API key of at least 16 characters' })
    .optional(),
  BATON_WEBHOOK_SECRET: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/]{22,}={0,2}$/, {
      error: 'expected a Standard Webhooks secret: "whsec_" followed by at least 16 base64-encoded bytes',
    })
    .optional(),
  BATON_PUBLIC_URL: optionalUrl,
  LLM_BASE_URL: optionalUrl,
  LLM_API_KEY: z.string().optional(),
  LLM_MODEL: z.string().min(1).default('gpt-4o-mini'),
  LLM_TIMEOUT_MS: z.coerce.number({ error: 'expected milliseconds' }).int().positive().default(60_000),
  WORKER_CONCURRENCY: z.coerce
    .number({ error: 'expected a positive integer' })
    .int()
    .positive({ error: 'expected a positive integer' })
    .default(16),
  STALLED_MAX_COUNT: z.coerce.number({ error: 'expected a positive integer' }).int().min(1).max(100).default(2),
  RECONCILE_INTERVAL_MS: z.coerce.number({ error: 'expected milliseconds' }).int().min(1000).default(30_000),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number({ error: 'expected milliseconds' }).int().positive().default(25_000),
  // 10 s / 5 s: a crashed worker's job is taken over within ~15 s (BullMQ's 30 s / 30 s: ~60 s). README.
  STEP_LOCK_DURATION_MS: z.coerce.number({ error: 'expected milliseconds' }).int().min(1000).default(10_000),
  STALLED_INTERVAL_MS: z.coerce.number({ error: 'expected milliseconds' }).int().min(500).default(5_000),
});

/**
 * Validate an environment and build the configuration.
 *
 * @param env - variables to read (defaults to `process.env`; tests pass their own object).
 * @returns a frozen, grouped configuration.
 * @throws {ConfigError} naming every invalid variable and what it expects, on one line.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env) {
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === 'production';
  const missing = [
    e.BATON_API_KEY ? null : 'BATON_API_KEY',
    e.BATON_WEBHOOK_SECRET ? null : 'BATON_WEBHOOK_SECRET',
  ].filter((v): v is string => v !== null);
  if (production && missing.length > 0) {
    throw new ConfigError(
      `invalid configuration: ${missing.map((m) => `${m}: required when NODE_ENV=production`).join('; ')}`,
    );
  }
  return Object.freeze({
    env: e.NODE_ENV,
    /** Names of secrets that fell back to their well-known development values. */
    devDefaults: Object.freeze(missing),
    log: Object.freeze({ level: e.LOG_LEVEL }),
    http: Object.freeze({
      port: e.PORT,
      publicUrl: (e.BATON_PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ''),
    }),
    postgres: Object.freeze({ url: e.DATABASE_URL, poolMax: e.DATABASE_POOL_MAX }),
    redis: Object.freeze({ url: e.REDIS_URL, prefix: e.QUEUE_PREFIX }),
    auth: Object.freeze({
      apiKey: e.BATON_API_KEY ?? DEV_API_KEY,
      webhookSecret: e.BATON_WEBHOOK_SECRET ?? DEV_WEBHOOK_SECRET,
    }),
    llm: Object.freeze({
      baseUrl: e.LLM_BASE_URL,
      apiKey: e.LLM_API_KEY,
      model: e.LLM_MODEL,
      timeoutMs: e.LLM_TIMEOUT_MS,
    }),
    worker: Object.freeze({
      concurrency: e.WORKER_CONCURRENCY,
      lockDurationMs: e.STEP_LOCK_DURATION_MS,
      stalledIntervalMs: e.STALLED_INTERVAL_MS,
      reconcileIntervalMs: e.RECONCILE_INTERVAL_MS,
      maxStalledCount: e.STALLED_MAX_COUNT,
    }),
    shutdown: Object.freeze({ timeoutMs: e.SHUTDOWN_TIMEOUT_MS }),
  });
}

/** The validated, frozen process configuration. */
export type Config = ReturnType<typeof loadConfig>;
