/**
 * A local Baton started from the Procfile's own lines (release, one `web`, N `worker`s), for the
 * demo and the benchmark.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import {
  SECOND_SIGNAL_EXIT_CODE,
  ShutdownRegistry,
  createLogger,
  installSignalHandlers,
  type Config,
  type ProcessHost,
} from '../lib/index.js';
import { exited, spawnProcess } from './procfile.js';

/**
 * For a command that starts a local stack: when it is interrupted (SIGTERM/SIGINT), close what
 * it registers (its stack's processes, first of all) instead of leaving them running, and exit
 * {@link SECOND_SIGNAL_EXIT_CODE}; a second signal exits at once.
 * @param host - the entry's `process` (only entry files own signals).
 */
export function stopOnSignal(host: ProcessHost, service: string, config: Config): ShutdownRegistry {
  const logger = createLogger({ level: config.log.level, service });
  const shutdown = new ShutdownRegistry(logger);
  installSignalHandlers(host, shutdown, { logger, timeoutMs: config.shutdown.timeoutMs, cleanExitCode: SECOND_SIGNAL_EXIT_CODE });
  return shutdown;
}

/** A failure the user can act on; its message is printed as is. */
export class StackError extends Error {}

/** The whole body of an incoming request, as UTF-8 text. */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Listen on `port` (0 = any free port) on loopback; resolves with the port. */
export function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

/** A TCP port on 127.0.0.1 that the kernel just handed out as free. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  const port = await listen(probe);
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

/**
 * The environment of the stack's processes, from this process's configuration (`loadConfig`):
 * its Redis, Postgres and LLM settings, a free port, and the API key and webhook secret if they
 * were set — otherwise fresh random ones rather than the well-known development defaults.
 */
export async function stackEnvironment(config: Config, overrides: Record<string, string> = {}): Promise<Record<string, string>> {
  const port = await freePort();
  const generated = new Set(config.devDefaults);
  return {
    NODE_ENV: 'development',
    LOG_LEVEL: config.log.level === 'info' ? 'warn' : config.log.level,
    PORT: String(port),
    DATABASE_URL: config.postgres.url,
    REDIS_URL: config.redis.url,
    QUEUE_PREFIX: config.redis.prefix,
    BATON_API_KEY: generated.has('BATON_API_KEY') ? `local_${randomBytes(16).toString('hex')}` : config.auth.apiKey,
    BATON_WEBHOOK_SECRET: generated.has('BATON_WEBHOOK_SECRET')
      ? `whsec_${randomBytes(32).toString('base64')}`
      : config.auth.webhookSecret,
    ...(config.auth.adminApiKey ? { BATON_ADMIN_API_KEY: config.auth.adminApiKey } : {}),
    BATON_PUBLIC_URL: `http://127.0.0.1:${port}`,
    LLM_MODEL: config.llm.model,
    ...(config.llm.baseUrl ? { LLM_BASE_URL: config.llm.baseUrl } : {}),
    ...(config.llm.apiKey ? { LLM_API_KEY: config.llm.apiKey } : {}),
    ...overrides,
  };
}

/**
 * Check that Redis and Postgres answer.
 * @throws {StackError} naming the service and the command that starts it.
 */
export async function checkServices(env: Record<string, string>): Promise<void> {
  const redis = new Redis(env.REDIS_URL ?? '', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
  } catch {
    throw new StackError(
      `Redis does not answer at ${env.REDIS_URL}. Start it with:\n  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no\n(or: docker compose up -d redis postgres)`,
    );
  } finally {
    redis.disconnect();
  }
  const admin = new URL(env.DATABASE_URL ?? '');
  admin.pathname = '/postgres';
  const sql = postgres(admin.toString(), { max: 1, connect_timeout: 5, onnotice: () => undefined });
  try {
    await sql`select 1`;
  } catch {
    throw new StackError(
      `PostgreSQL does not answer at ${admin.host}. Start it with:\n  pg_ctlcluster --skip-systemctl-redirect 15 main start\n(or: docker compose up -d redis postgres)`,
    );
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** Running processes of a local stack. */
export interface LocalStack {
  baseUrl: string;
  children: ChildProcess[];
  /** SIGTERM everything, wait up to 10 s, then SIGKILL what is left. */
  stop(): Promise<void>;
}

/**
 * Run `release`, then start one `web` and `workers` worker processes, and wait until `/readyz`
 * answers 200.
 * @throws {StackError} when release fails or web is not ready within 30 s.
 */
export async function startLocalStack(env: Record<string, string>, workers: number, log: (line: string) => void): Promise<LocalStack> {
  const release = spawnProcess('release', env, { stdio: 'inherit' });
  const released = await exited(release);
  if (released.code !== 0) throw new StackError(`release failed (exit ${released.code ?? released.signal})`);
  log('release: migrated, seeded market prices, synced definitions/');

  const children = [spawnProcess('web', env, { stdio: 'inherit' })];
  for (let i = 0; i < workers; i += 1) children.push(spawnProcess('worker', env, { stdio: 'inherit' }));
  let stopping = false;
  for (const c of children) {
    c.once('exit', (code, signal) => {
      if (!stopping) log(`a process exited unexpectedly (code ${code}, signal ${signal})`);
    });
  }
  const stop = async () => {
    stopping = true;
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => Promise.race([exited(c), new Promise((r) => setTimeout(r, 10_000))])));
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  const baseUrl = env.BATON_PUBLIC_URL ?? '';
  log(`started from the Procfile: 1 web (port ${env.PORT}) + ${workers} workers`);
  const readyBy = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`${baseUrl}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > readyBy) {
      await stop();
      throw new StackError('the web process did not become ready within 30 s');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  log('web is ready');
  return { baseUrl, children, stop };
}
