/**
 * Worker process entry (Procfile `worker`). Serves every agent type, or the subset given with
 * `--agents context,api`, plus the engine queues. SIGTERM/SIGINT: stop taking jobs, let active
 * ones finish within SHUTDOWN_TIMEOUT_MS; a second signal exits at once.
 */
import { parseArgs } from 'node:util';
import { AGENT_TYPES, type AgentType } from '../agents/index.js';
import { ConfigError, ShutdownRegistry, createLogger, guardUnhandledRejections, installSignalHandlers, loadConfig, runEntry, serveMetrics, startTelemetry } from '../lib/index.js';
import { connectEngine } from '../services/engine/index.js';
import { createRedis } from '../queues/index.js';
import { createAgentLayer } from './agent-layer.js';
import { startWorkers } from './start-workers.js';

function parseAgentTypes(value: string | undefined): AgentType[] {
  if (!value) return [...AGENT_TYPES];
  const wanted = value.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = wanted.filter((t) => !(AGENT_TYPES as readonly string[]).includes(t));
  if (unknown.length > 0 || wanted.length === 0) {
    throw new ConfigError(`--agents: expected a comma-separated subset of ${AGENT_TYPES.join(',')}, got "${value}"`);
  }
  return wanted as AgentType[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { agents: { type: 'string' } }, strict: true });
  const config = loadConfig();
  const agentTypes = parseAgentTypes(values.agents);
  const logger = createLogger({ level: config.log.level, service: 'worker' });
  for (const name of config.devDefaults) logger.warn(`${name} is not set: using the development default`);
  const shutdown = new ShutdownRegistry(logger);
  // observability hook: tracing (OTEL_EXPORTER_OTLP_ENDPOINT) and this worker's /metrics (METRICS_PORT).
  const telemetry = startTelemetry(config.telemetry, 'worker');
  shutdown.register('telemetry', () => telemetry.shutdown());
  if (config.metrics.port !== undefined) {
    const metrics = await serveMetrics(config.metrics.port, logger);
    shutdown.register('metrics', () => metrics.close());
    logger.info({ port: metrics.port }, 'metrics listening');
  }

  const engine = connectEngine(config, logger, shutdown, { applicationName: 'baton-worker' });
  const workerConnection = createRedis(config.redis.url, 'worker');
  shutdown.register('redis-worker', () => workerConnection.quit());

  const layer = await createAgentLayer(config, logger);
  shutdown.register('function-runtime', () => layer.close());
  const pool = startWorkers(
    { ...engine, agents: new Map(), ...layer },
    workerConnection,
    agentTypes,
  );
  shutdown.register('workers', () => pool.close());
  logger.info({ agentTypes, prefix: config.redis.prefix }, 'worker ready');

  installSignalHandlers(process, shutdown, { logger, timeoutMs: config.shutdown.timeoutMs });
  guardUnhandledRejections(process, logger);
}

runEntry(process, 'baton worker', main);
