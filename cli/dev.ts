/**
 * `baton dev`: the whole of Baton in one process for development — after checking that Redis
 * and Postgres answer (saying how to start them when they do not), it migrates, seeds and syncs
 * `definitions/` (the release steps), then serves the API (with `/mcp`, `/a2a`, Bull Board) and
 * runs every worker and the periodic reconciler. A composition root (like `services/api/main.ts`
 * and `workers/main.ts`).
 */
import { AGENT_TYPES, parseAgentSource } from '../agents/index.js';
import { ShutdownRegistry, createLogger, loadConfig, type Config } from '../lib/index.js';
import { createRedis } from '../queues/index.js';
import { connectEngine } from '../services/engine/index.js';
import { createApp, RunEventHub, serveApp } from '../services/api/index.js';
import { createAgentLayer } from '../workers/agent-layer.js';
import { startWorkers } from '../workers/start-workers.js';
import { release } from '../scripts/release.js';
import { checkServices } from '../scripts/local-stack.js';

/** A running `baton dev`. */
export interface DevStack {
  baseUrl: string;
  /** Stop serving and working, within SHUTDOWN_TIMEOUT_MS. @returns whether everything closed in time. */
  stop(): Promise<boolean>;
}

/**
 * Start everything.
 * @param options.port - listen here instead of `PORT` (links use it unless `BATON_PUBLIC_URL` is set).
 * @param log - where the URLs and progress lines go.
 * @throws {StackError} when Redis or Postgres does not answer (the message says how to start it).
 */
export async function startDev(options: { port?: number }, log: (line: string) => void): Promise<DevStack> {
  const loaded = loadConfig();
  const port = options.port ?? loaded.http.port;
  const defaultUrl = loaded.http.publicUrl === `http://localhost:${loaded.http.port}`;
  const config: Config = { ...loaded, http: { ...loaded.http, port, publicUrl: defaultUrl ? `http://localhost:${port}` : loaded.http.publicUrl } };
  const logger = createLogger({ level: config.log.level, service: 'dev' });
  for (const name of config.devDefaults) logger.warn(`${name} is not set: using the development default`);

  await checkServices({ REDIS_URL: config.redis.url, DATABASE_URL: config.postgres.url });
  const report = await release(config, logger.child({ component: 'release' }));
  log(`migrated ${config.postgres.url.replace(/\/\/[^@/]*@/, '//')}, synced ${report.definitions.created.length + report.definitions.unchanged.length} definitions`);

  const shutdown = new ShutdownRegistry(logger);
  const engine = connectEngine(config, logger, shutdown, { applicationName: 'baton-dev' });
  const layer = await createAgentLayer(config, logger);
  shutdown.register('function-runtime', () => layer.close());
  const deps = { ...engine, agents: new Map(), ...layer };

  const hub = new RunEventHub(engine.database.sql, engine.queues, logger);
  await hub.start();
  shutdown.register('event-hub', () => hub.stop());
  const workerConnection = createRedis(config.redis.url, 'worker');
  shutdown.register('redis-worker', () => workerConnection.quit());
  const pool = startWorkers(deps, workerConnection, AGENT_TYPES);
  shutdown.register('workers', () => pool.close());

  await serveApp(createApp(deps, hub, parseAgentSource), port, shutdown);
  const base = config.http.publicUrl;
  log(`Baton is running (API, ${AGENT_TYPES.length} agent queues + engine workers, reconciler every ${config.worker.reconcileIntervalMs} ms)`);
  log(`  API      ${base}/v1   (BATON_URL=${base})`);
  log(`  console  ${base}/admin/queues   (Bull Board; the platform-admin key BATON_ADMIN_API_KEY as Bearer or Basic password${config.auth.adminApiKey ? '' : ' — not set, so closed'})`);
  log(`  MCP      ${base}/mcp   (streamable HTTP, API key as Bearer)`);
  log(`  A2A      ${base}/a2a/<slug>/.well-known/agent-card.json`);
  return { baseUrl: base, stop: () => shutdown.run(config.shutdown.timeoutMs) };
}
