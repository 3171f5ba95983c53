/**
 * API process entry (Procfile `web`). SIGTERM/SIGINT: stop accepting connections, close
 * streams and clients within SHUTDOWN_TIMEOUT_MS; a second signal exits at once.
 */
import { parseAgentSource } from '../../agents/index.js';
import { ShutdownRegistry, createLogger, guardUnhandledRejections, installSignalHandlers, loadConfig, runEntry, startTelemetry } from '../../lib/index.js';
import { connectEngine } from '../engine/index.js';
import { createApp } from './app.js';
import { RunEventHub } from './event-hub.js';
import { serveApp } from './serve.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.log.level, service: 'web' });
  for (const name of config.devDefaults) logger.warn(`${name} is not set: using the development default`);
  if (!config.auth.adminApiKey) logger.warn('BATON_ADMIN_API_KEY is not set: POST/GET /v1/organizations and Bull Board answer 403');
  const shutdown = new ShutdownRegistry(logger);
  const telemetry = startTelemetry(config.telemetry, 'web');
  shutdown.register('telemetry', () => telemetry.shutdown());

  const deps = connectEngine(config, logger, shutdown, { applicationName: 'baton-web', failFast: true });
  const hub = new RunEventHub(deps.database.sql, deps.queues, logger);
  await hub.start();
  shutdown.register('event-hub', () => hub.stop());

  await serveApp(createApp(deps, hub, parseAgentSource), config.http.port, shutdown);
  logger.info({ port: config.http.port, publicUrl: config.http.publicUrl }, 'api listening');

  installSignalHandlers(process, shutdown, { logger, timeoutMs: config.shutdown.timeoutMs });
  guardUnhandledRejections(process, logger);
}

runEntry(process, 'baton web', main);
