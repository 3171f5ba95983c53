/**
 * API process entry (Procfile `web`). SIGTERM/SIGINT: stop accepting connections, close
 * streams and clients within SHUTDOWN_TIMEOUT_MS; a second signal exits at once.
 */
import { parseAgentSource } from '../../agents/index.js';
import { ShutdownRegistry, createLogger, installSignalHandlers, loadConfig, runEntry, startTelemetry } from '../../lib/index.js';
import { createDatabase } from '../../db/index.js';
import { Queues, createRedis } from '../../queues/index.js';
import { createApp } from './app.js';
import { RunEventHub } from './event-hub.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.log.level, service: 'web' });
  for (const name of config.devDefaults) logger.warn(`${name} is not set: using the development default`);
  const shutdown = new ShutdownRegistry(logger);
  const telemetry = startTelemetry(config.telemetry, 'web');
  shutdown.register('telemetry', () => telemetry.shutdown());

  const database = createDatabase(config.postgres.url, { max: config.postgres.poolMax, applicationName: 'baton-web' });
  shutdown.register('postgres', () => database.close());
  const producer = createRedis(config.redis.url, 'producer');
  shutdown.register('redis', () => producer.quit());
  const queues = new Queues(producer, config.redis.prefix, logger, { keepCompletedJobs: config.redis.keepCompletedJobs });
  shutdown.register('queues', () => queues.close());
  const hub = new RunEventHub(database.sql, logger);
  await hub.start();
  shutdown.register('event-hub', () => hub.stop());

  const app = createApp({ config, database, queues, logger, agentTypes: new Map() }, hub, parseAgentSource);
  const server = app.listen(config.http.port);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  shutdown.register('http', async () => {
    server.closeIdleConnections();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Open SSE streams would hold the server forever: end them after the others drain.
    setTimeout(() => server.closeAllConnections(), 1000).unref();
    await closed;
  });
  logger.info({ port: config.http.port, publicUrl: config.http.publicUrl }, 'api listening');

  installSignalHandlers(process, shutdown, { logger, timeoutMs: config.shutdown.timeoutMs });
}

runEntry(process, 'baton web', main);
