/** The express application (no `listen`): routes, auth, Bull Board, error mapping. */
import express from 'express';
import { z } from 'zod';
import { sql } from 'drizzle-orm';
import { withinMs } from '../../lib/index.js';
import type { EngineDeps } from '../engine/index.js';
import { ADMIN_PATH, adminRouter } from './admin.js';
import { ApiKeyAuthenticator } from './auth.js';
import { ConsoleSessions } from './console-session.js';
import { consoleRouter } from './routes-console.js';
import { errorHandler } from './error-handler.js';
import { jsonBodyGuard, requestGuard } from './input-guard.js';
import type { RunEventHub } from './event-hub.js';
import { adminApiRouter } from './routes-admin.js';
import { rolesRouter } from './routes-roles.js';
import { organizationsRouter } from './routes-organizations.js';
import { approvalsRouter } from './routes-approvals.js';
import { assetsRouter } from './routes-assets.js';
import { interventionsRouter } from './routes-interventions.js';
import { definitionsRouter } from './routes-definitions.js';
import { runsRouter } from './routes-runs.js';
import { agentsRouter, type AgentParser } from './routes-agents.js';
import { secretsRouter } from './routes-secrets.js';
import { webhooksRouter } from './routes-webhooks.js';
import { requestObservability } from './observability.js';
import { metricsRouter } from './routes-metrics.js';
import { openApiRouter } from './routes-openapi.js';
import { statsRouter } from './routes-stats.js';
import { documentRoute } from './openapi.js';

const Readiness = z.object({ status: z.enum(['ready', 'unavailable']), redis: z.string(), postgres: z.string() });
import { a2aRouter } from './routes-a2a.js';
import { mcpRouter } from './routes-mcp.js';

/** What a JSON body may carry besides a run's input (definition, webhook URL, key), in bytes. */
const JSON_ENVELOPE_BYTES = 64 * 1024;

/** Timeout of each readiness probe, in milliseconds. */
const READY_TIMEOUT_MS = 1000;

/**
 * @param parseAgent - the agent catalog's entry parser (for `POST /v1/agents`).
 */
export function createApp(deps: EngineDeps, hub: RunEventHub, parseAgent: AgentParser): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.config.http.trustProxy);
  const sessions = new ConsoleSessions(deps.config.auth.webhookSecret);
  const auth = new ApiKeyAuthenticator(deps.database.db, sessions, { platformKey: deps.config.auth.adminApiKey, logger: deps.logger });
  hub.subscribeApiKeyChanges((keyHash) => auth.forget(keyHash));
  app.use(requestObservability());
  app.use(requestGuard()); // NUL, lone surrogates, unknown query parameters: 400 naming the field

  documentRoute({ method: 'get', path: '/healthz', summary: 'Liveness', tags: ['operations'], auth: 'none', responses: { 200: { description: 'Alive', schema: z.object({ status: z.literal('ok') }) } } });
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  documentRoute({ method: 'get', path: '/readyz', summary: 'Readiness: Redis and Postgres answer', tags: ['operations'], auth: 'none', responses: { 200: { description: 'Ready', schema: Readiness }, 503: { description: 'A dependency does not answer', schema: Readiness } } });
  app.get('/readyz', async (_req, res) => {
    const [redis, postgres] = await Promise.allSettled([
      withinMs(deps.queues.connection.ping(), READY_TIMEOUT_MS, 'Redis PING'),
      withinMs(deps.database.db.execute(sql`select 1`), READY_TIMEOUT_MS, 'Postgres select 1'),
    ]);
    const ok = redis.status === 'fulfilled' && postgres.status === 'fulfilled';
    res.status(ok ? 200 : 503).json({
      status: ok ? 'ready' : 'unavailable',
      redis: redis.status === 'fulfilled' ? 'ok' : String(redis.reason),
      postgres: postgres.status === 'fulfilled' ? 'ok' : String(postgres.reason),
    });
  });

  app.use(metricsRouter(deps));
  app.use(openApiRouter(deps));
  documentRoute({ method: 'get', path: ADMIN_PATH, summary: 'Bull Board (HTML)', description: 'Platform administrators only: the platform-admin key (`BATON_ADMIN_API_KEY`) as Bearer or as the HTTP Basic password; an organization key gets 403.', tags: ['operations'], auth: 'platformKey', responses: { 200: { description: 'The queue dashboard', contentType: 'text/html', schema: z.string() } } });
  app.use(ADMIN_PATH, ...adminRouter(deps.queues, auth));
  app.use(
    express.json({
      // A run's input may be RUN_INPUT_MAX_BYTES (refused above that by name); room for the rest.
      limit: Math.max(deps.config.runInput.maxBytes + JSON_ENVELOPE_BYTES, 1024 * 1024),
      // Keep the exact bytes: Standard Webhooks signatures from integrations cover them.
      verify: (req, _res, buf) => {
        (req as express.Request).rawBody = buf;
      },
    }),
  );
  app.use(jsonBodyGuard()); // NUL, lone surrogates, nesting deeper than 64: 400 naming the path
  app.use(runsRouter(deps, auth, hub));
  app.use(approvalsRouter(deps, auth));
  app.use(definitionsRouter(deps, auth));
  app.use(agentsRouter(deps, auth, parseAgent));
  app.use(adminApiRouter(deps, auth));
  app.use(rolesRouter(deps, auth));
  app.use(organizationsRouter(deps, auth));
  app.use(interventionsRouter(deps, auth));
  app.use(secretsRouter(deps, auth));
  app.use(assetsRouter(deps, auth));
  app.use(webhooksRouter(deps, auth));
  app.use(consoleRouter(deps, auth, sessions, hub));
  app.use(statsRouter(deps, auth));
  app.use(a2aRouter(deps, auth, hub));
  app.use(mcpRouter(deps, auth));
  app.use((req, res) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.path}` } });
  });
  app.use(errorHandler(deps.logger));
  return app;
}
