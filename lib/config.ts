/**
 * Process configuration: the only module that reads `process.env`.
 *
 * `loadConfig(env)` validates the environment with one zod schema and returns a grouped,
 * frozen object. Importing this module reads nothing and never exits; entry files call
 * `loadConfig()` and turn a {@link ConfigError} into a one-line message and exit code 1.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { isOutboundAllowEntry } from './outbound.js';

/** Development-only API key, used when `BATON_API_KEY` is unset outside production. */
export const DEV_API_KEY = 'baton_dev_key_do_not_use_in_production';
/** Development-only webhook secret (`whsec_` + base64 of 32 fixed bytes), outside production. */
export const DEV_WEBHOOK_SECRET = `whsec_${Buffer.from('baton-development-webhook-secret!').toString('base64')}`;

/** Development-only secrets-encryption key (32 bytes, base64), outside production. */
export const DEV_SECRETS_KEY = Buffer.from('baton-development-secrets-key-32').toString('base64');

/**
 * Variables never visible to agents through `ctx.env`, whatever their `env:` allow-list says:
 * Baton's own credentials and connection strings.
 */
const RESERVED_ENV = /^(BATON_|DATABASE_|REDIS_|LLM_API_KEY$|PG|npm_)/;

/** Loopback destinations allowed outside production (development and tests call local servers). */
export const DEV_OUTBOUND_ALLOW = ['127.0.0.0/8', '::1/128', 'localhost'] as const;

/**
 * An empty value counts as unset (docker compose passes `${VAR:-}` as an empty string), so the
 * development default or the production requirement applies instead of a format error.
 */
function unsetWhenEmpty<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? undefined : v), schema);
}

/** A comma-separated list; empty entries dropped. */
const csv = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s.length > 0) : v),
  z.array(z.string()).optional(),
);

const TRUST_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** Whether `value` is a `TRUST_PROXY` setting (see the schema). */
function isTrustProxy(value: string): boolean {
  if (/^(true|false|\d{1,3})$/.test(value.trim())) return true;
  const entries = value.split(',').map((s) => s.trim());
  return entries.every((entry) => {
    if (TRUST_NAMES.has(entry)) return true;
    const [address = '', bits, ...rest] = entry.split('/');
    const family = isIP(address);
    if (family === 0 || rest.length > 0) return false;
    return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
  });
}

/** Express' `trust proxy` value of a valid `TRUST_PROXY`. */
function trustProxyValue(value: string): boolean | number | string {
  const v = value.trim();
  if (v === 'true' || v === 'false') return v === 'true';
  return /^\d+$/.test(v) ? Number(v) : v;
}

/** A 32-byte key as base64 (44 characters) or hex (64 characters). */
const key32 = z
  .string()
  .refine((v) => /^[0-9a-fA-F]{64}$/.test(v) || Buffer.from(v, 'base64').length === 32, {
    error: 'expected a 32-byte key as 64 hex characters or base64 (e.g. `openssl rand -base64 32`)',
  })
  .optional();

const positiveInt = (unit: string) =>
  z.coerce.number({ error: `expected ${unit}` }).int({ error: `expected ${unit}` }).positive({ error: `expected ${unit}` });

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
    .default(8),
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
  REDIS_COMMAND_TIMEOUT_MS: z.coerce.number({ error: 'expected milliseconds' }).int().min(100).max(60_000).default(1000),
  JOBS_KEEP_COMPLETED: z.coerce.number({ error: 'expected a whole number of jobs' }).int().min(0).max(1_000_000).default(0),
  BATON_API_KEY: unsetWhenEmpty(
    z
      .string()
      .min(16, { error: 'expected an API key of at least 16 characters' })
      .optional(),
  ),
  /** The platform administrator's key (organizations, Bull Board); unset: those routes are closed. */
  BATON_ADMIN_API_KEY: unsetWhenEmpty(
    z
      .string()
      .min(16, { error: 'expected an API key of at least 16 characters' })
      .optional(),
  ),
  BATON_WEBHOOK_SECRET: unsetWhenEmpty(
    z
      .string()
      .regex(/^whsec_[A-Za-z0-9+/]{22,}={0,2}$/, {
        error: 'expected a Standard Webhooks secret: "whsec_" followed by at least 16 base64-encoded bytes',
      })
      .optional(),
  ),
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
  BATON_SECRETS_KEY: unsetWhenEmpty(key32),
  FUNCTION_THREADS: positiveInt('a positive integer').max(64).default(2),
  FUNCTION_MAX_TIMEOUT_MS: positiveInt('milliseconds').default(300_000),
  FUNCTION_MAX_MEMORY_MB: positiveInt('MiB').max(4096).default(256),
  STEP_OUTPUT_MAX_BYTES: positiveInt('bytes').default(1024 * 1024),
  STEP_CLAIM_DEFER_MS: z.coerce.number({ error: 'expected milliseconds' }).int().min(0).max(60_000).default(20),
  RUN_INPUT_MAX_BYTES: positiveInt('bytes').max(64 * 1024 * 1024).default(1024 * 1024),
  ASSET_MAX_BYTES: positiveInt('bytes').default(20 * 1024 * 1024),
  OUTBOUND_ALLOW: csv.refine((entries) => (entries ?? []).every(isOutboundAllowEntry), {
    error: 'expected comma-separated host names, *.suffix entries, IP addresses or CIDRs (e.g. 10.0.0.0/8)',
  }),
  HTTP_STEP_TIMEOUT_MS: positiveInt('milliseconds').default(30_000),
  /**
   * Which peers' `X-Forwarded-For` Express believes (`trust proxy`): `true`, `false`, a number of
   * hops, or comma-separated `loopback`/`linklocal`/`uniquelocal`, IP addresses and CIDRs.
   */
  TRUST_PROXY: z
    .string()
    .refine(isTrustProxy, { error: 'expected true, false, a number of hops, or comma-separated loopback, linklocal, uniquelocal, IP addresses or CIDRs' })
    .default('loopback, linklocal, uniquelocal')
    .transform(trustProxyValue),
  /** Run starts (`POST /v1/runs`, not dry runs) per organization and minute, shared by every API node; 0: no limit. */
  RATE_LIMIT_RUNS_PER_MINUTE: z.coerce.number({ error: 'expected a whole number of runs per minute (0: no limit)' }).int({ error: 'expected a whole number of runs per minute (0: no limit)' }).min(0, { error: 'expected a whole number of runs per minute (0: no limit)' }).max(1_000_000_000).default(1500),
  MAX_RUN_DEPTH: positiveInt('a positive integer').max(1000).default(10),
  DEFINITION_MAX_BYTES: positiveInt('bytes').default(1024 * 1024),
  DEFINITION_MAX_STEPS: positiveInt('a positive integer').max(100_000).default(1000),
  EXPRESSION_MAX_BYTES: positiveInt('bytes').default(4096),
  EXPRESSION_TIMEOUT_MS: positiveInt('milliseconds').max(600_000).default(1000),
  /** Port of a worker's Prometheus `/metrics` server; unset: workers serve no metrics. */
  METRICS_PORT: unsetWhenEmpty(
    z.coerce
      .number({ error: 'expected a TCP port number' })
      .int({ error: 'expected a TCP port number' })
      .min(0, { error: 'expected a TCP port between 0 and 65535' })
      .max(65535, { error: 'expected a TCP port between 0 and 65535' })
      .optional(),
  ),
  /** OTLP/HTTP base URL (`…/v1/traces` is appended); unset (and no traces endpoint): tracing is off. */
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalUrl,
  /** OTLP/HTTP traces URL, used as is (overrides the base URL for traces). */
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: optionalUrl,
  OTEL_SERVICE_NAME: unsetWhenEmpty(z.string().min(1).max(200).optional()),
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
  if (e.BATON_ADMIN_API_KEY !== undefined && e.BATON_ADMIN_API_KEY === (e.BATON_API_KEY ?? DEV_API_KEY)) {
    throw new ConfigError('invalid configuration: BATON_ADMIN_API_KEY: must differ from BATON_API_KEY (an organization key)');
  }
  const missing = [
    e.BATON_API_KEY ? null : 'BATON_API_KEY',
    e.BATON_WEBHOOK_SECRET ? null : 'BATON_WEBHOOK_SECRET',
    e.BATON_SECRETS_KEY ? null : 'BATON_SECRETS_KEY',
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
      /** Express' `trust proxy`: whose `X-Forwarded-For` sets `req.ip` (e.g. a decision's `clientIp`). */
      trustProxy: e.TRUST_PROXY,
    }),
    postgres: Object.freeze({ url: e.DATABASE_URL, poolMax: e.DATABASE_POOL_MAX }),
    redis: Object.freeze({ url: e.REDIS_URL, prefix: e.QUEUE_PREFIX, keepCompletedJobs: e.JOBS_KEEP_COMPLETED, commandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS }),
    auth: Object.freeze({
      apiKey: e.BATON_API_KEY ?? DEV_API_KEY,
      webhookSecret: e.BATON_WEBHOOK_SECRET ?? DEV_WEBHOOK_SECRET,
      /**
       * The platform-admin key (`BATON_ADMIN_API_KEY`): creates and lists organizations, opens
       * Bull Board; never an organization's key. Undefined: those routes answer 403.
       */
      adminApiKey: e.BATON_ADMIN_API_KEY,
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
    secrets: Object.freeze({
      /** AES-256-GCM key for secrets at rest (32 bytes). */
      key: decodeKey32(e.BATON_SECRETS_KEY ?? DEV_SECRETS_KEY),
    }),
    functions: Object.freeze({
      /** Worker threads running function steps, per worker process. */
      threads: e.FUNCTION_THREADS,
      /** Upper bound of a function step's `limits.timeout` / `timeout`, in milliseconds. */
      maxTimeoutMs: e.FUNCTION_MAX_TIMEOUT_MS,
      /** Upper bound of a function step's `limits.memoryMb`, in MiB. */
      maxMemoryMb: e.FUNCTION_MAX_MEMORY_MB,
    }),
    steps: Object.freeze({
      /** Largest step output (its JSON text), in bytes; larger fails with `OUTPUT_TOO_LARGE`. */
      outputMaxBytes: e.STEP_OUTPUT_MAX_BYTES,
      /**
       * How long a plain step's agent runs before its attempt is recorded, in milliseconds: a step
       * done sooner is claimed and completed in one transaction (services/engine/hot-path.ts). 0:
       * every attempt is recorded before its agent starts.
       */
      claimDeferMs: e.STEP_CLAIM_DEFER_MS,
      /** Largest asset saved by `ctx.assets.saveBuffer`, in bytes. */
      assetMaxBytes: e.ASSET_MAX_BYTES,
      /** Default timeout of one `type: http` request, in milliseconds. */
      httpTimeoutMs: e.HTTP_STEP_TIMEOUT_MS,
    }),
    limits: Object.freeze({
      /** Run starts per organization and minute (an API key's `rateLimitRunsPerMinute` overrides it); 0: off. */
      runsPerMinute: e.RATE_LIMIT_RUNS_PER_MINUTE,
      /** Deepest child run: a top-level run is depth 0, its sub-runs 1, … (`RUN_DEPTH_EXCEEDED`). */
      maxRunDepth: e.MAX_RUN_DEPTH,
      /** Largest definition source, in bytes (413 `DEFINITION_TOO_LARGE`). */
      definitionMaxBytes: e.DEFINITION_MAX_BYTES,
      /** Most steps in one definition. */
      definitionMaxSteps: e.DEFINITION_MAX_STEPS,
      /** Largest single expression, in bytes. */
      expressionMaxBytes: e.EXPRESSION_MAX_BYTES,
      /** Wall-clock limit of one expression evaluation, in milliseconds (`EXPRESSION_TIMEOUT`). */
      expressionTimeoutMs: e.EXPRESSION_TIMEOUT_MS,
    }),
    runInput: Object.freeze({
      /** Largest run input (its JSON text, UTF-8), in bytes; larger is refused with `INPUT_TOO_LARGE`. */
      maxBytes: e.RUN_INPUT_MAX_BYTES,
    }),
    metrics: Object.freeze({
      /** Port of a worker process's `/metrics` server (0: any free port); undefined: none. */
      port: e.METRICS_PORT,
    }),
    telemetry: Object.freeze({
      /** Where spans are POSTed as OTLP/HTTP JSON; undefined: tracing is off. */
      tracesUrl:
        e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
        (e.OTEL_EXPORTER_OTLP_ENDPOINT ? `${e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces` : undefined),
      /** `service.name` of this process's spans; default `baton-web` / `baton-worker`. */
      serviceName: e.OTEL_SERVICE_NAME,
    }),
    outbound: Object.freeze({
      /**
       * Hosts or CIDRs outgoing requests may reach although they are loopback, link-local,
       * private or cloud-metadata addresses. Outside production loopback is always allowed.
       */
      allow: Object.freeze([
        ...(production ? [] : DEV_OUTBOUND_ALLOW),
        // The operator's own LLM endpoint may be private (a gateway, a local model server).
        ...(e.LLM_BASE_URL ? [new URL(e.LLM_BASE_URL).hostname.replace(/^\[|\]$/g, '')] : []),
        ...(e.OUTBOUND_ALLOW ?? []),
      ]),
    }),
    /** Variables agents may read through `ctx.env` (each agent sees only its `env:` allow-list). */
    agentEnv: Object.freeze(
      Object.fromEntries(
        Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== '' && !RESERVED_ENV.test(entry[0])),
      ),
    ),
  });
}

function decodeKey32(text: string): Buffer {
  return /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
}

/** The validated, frozen process configuration. */
export type Config = ReturnType<typeof loadConfig>;

const CliEnv = z.object({
  BATON_URL: optionalUrl,
  BATON_API_KEY: unsetWhenEmpty(z.string().min(1).optional()),
});

/**
 * What the `baton` CLI needs to reach a Baton API: `BATON_URL` (default `http://localhost:3000`)
 * and `BATON_API_KEY` (default: the development key). Flags override both.
 * @throws {ConfigError} when `BATON_URL` is not an absolute URL.
 */
export function loadCliConfig(env: Record<string, string | undefined> = process.env): { url: string; apiKey: string } {
  const parsed = CliEnv.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(`invalid configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return { url: (parsed.data.BATON_URL ?? 'http://localhost:3000').replace(/\/+$/, ''), apiKey: parsed.data.BATON_API_KEY ?? DEV_API_KEY };
}
