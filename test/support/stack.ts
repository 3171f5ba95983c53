/**
 * An in-process Baton for tests: the real API (listening on an ephemeral port) and real
 * workers, against the test run's database and queue prefix.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { parseDefinition } from '../../definitions/index.js';
import { AGENT_TYPES, parseAgentSource, type AgentType, type NamedAgent } from '../../agents/index.js';
import { createLogger, silentLogger, type Config, type Logger } from '../../lib/index.js';
import { createDatabase, type Database } from '../../db/index.js';
import { Queues, createRedis } from '../../queues/index.js';
import { agentTypesOf, syncDefinitions } from '../../services/store/index.js';
import { createAgentLayer } from '../../workers/agent-layer.js';
import { createApp } from '../../services/api/app.js';
import { answerClientErrors } from '../../services/api/client-errors.js';
import { RunEventHub } from '../../services/api/event-hub.js';
import { startWorkers, type WorkerPool } from '../../workers/start-workers.js';
import type { WorkerDeps } from '../../workers/deps.js';
import { testEnvironment } from './environment.js';

export interface Stack {
  deps: WorkerDeps;
  config: Config;
  organizationId: string;
  baseUrl: string;
  apiKey: string;
  /** The platform-admin key (`BATON_ADMIN_API_KEY`) of the test environment. */
  adminApiKey: string;
  pool: WorkerPool | undefined;
  close(): Promise<void>;
}

export interface StackOptions {
  /** Start workers in this process (default true). */
  workers?: boolean;
  /** Agents available to the workers, added to (and overriding) the registry. */
  agents?: NamedAgent[];
  /** Config overrides applied on top of the test environment. */
  /** Config overrides; each top-level group is merged into the test environment's group. */
  config?: { [K in keyof Config]?: Partial<Config[K]> };
  /** Logger of the API and workers (default: silent). */
  logger?: Logger;
}

/** Start the API and (optionally) workers in-process. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const env = await testEnvironment();
  const config: Config = { ...env.config };
  for (const [group, values] of Object.entries(options.config ?? {})) {
    Object.assign(config, { [group]: { ...(env.config[group as keyof Config] as object), ...(values as object) } });
  }
  const logger = options.logger ?? (process.env.TEST_STACK_LOG ? createLogger({ level: process.env.TEST_STACK_LOG, service: 'test' }) : silentLogger());
  const database: Database = createDatabase(config.postgres.url, { max: options.config?.postgres?.poolMax ?? 10 });
  const producer = createRedis(config.redis.url, 'producer');
  const queues = new Queues(producer, config.redis.prefix, logger, { keepCompletedJobs: config.redis.keepCompletedJobs });
  const agents = new Map<string, NamedAgent>();
  const agentTypes = new Map<string, AgentType>();
  for (const a of options.agents ?? []) {
    agents.set(a.name, a);
    agentTypes.set(a.name, a.type);
  }
  const layer = await createAgentLayer(config, logger);
  const deps: WorkerDeps = { config, database, queues, logger, agents, agentTypes, ...layer };
  const hub = new RunEventHub(database.sql, queues, logger);
  await hub.start();
  const server: Server = createApp(deps, hub, parseAgentSource).listen(0);
  answerClientErrors(server);
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const workerConnection = options.workers === false ? undefined : createRedis(config.redis.url, 'worker');
  const pool = workerConnection ? startWorkers(deps, workerConnection, AGENT_TYPES) : undefined;
  const { port } = server.address() as AddressInfo;
  // Links such as decideUrl must point at this ephemeral port.
  deps.config = { ...config, http: { ...config.http, publicUrl: `http://127.0.0.1:${port}` } };
  return {
    deps,
    config: deps.config,
    organizationId: env.organizationId,
    baseUrl: `http://127.0.0.1:${port}`,
    apiKey: config.auth.apiKey,
    adminApiKey: config.auth.adminApiKey ?? '',
    pool,
    async close() {
      await pool?.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await hub.stop();
      await queues.close();
      producer.disconnect();
      workerConnection?.disconnect();
      await layer.close();
      await database.close();
    },
  };
}

/**
 * Parse a YAML definition (agents: the organization's catalog plus `extraAgents`) and store it
 * for the test organization.
 */
export async function storeDefinition(stack: Stack, yaml: string, extraAgents: NamedAgent[] = []): Promise<void> {
  const types = await agentTypesOf(stack.deps.database.db, stack.organizationId);
  for (const a of extraAgents) types.set(a.name, a.type);
  const definition = parseDefinition(yaml, { file: 'test.yaml', agents: types });
  await syncDefinitions(stack.deps.database.db, stack.organizationId, [{ definition, source: yaml }]);
}

/** JSON request to the stack's API with its API key. */
export async function api<T = Record<string, unknown>>(
  stack: Pick<Stack, 'baseUrl' | 'apiKey'>,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${stack.baseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${stack.apiKey}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  // The shape is the caller's expectation; tests assert on it.
  return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
}

/**
 * Poll `check` until it returns a value other than `undefined`.
 * @param timeoutMs - give up (throwing `message`) after this long.
 */
export async function waitFor<T>(check: () => Promise<T | undefined>, timeoutMs: number, message: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${message}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Wait until a run reaches a terminal status; returns its view. */
export async function waitForRun(stack: Pick<Stack, 'baseUrl' | 'apiKey'>, runId: string, timeoutMs = 30_000): Promise<RunView> {
  return waitFor(
    async () => {
      const { body } = await api<RunView>(stack, 'GET', `/v1/runs/${runId}`);
      return ['completed', 'failed', 'cancelled'].includes(body?.status) ? body : undefined;
    },
    timeoutMs,
    `run ${runId} to finish`,
  );
}

/** `GET /v1/runs/:id` as the tests read it. */
export interface RunView {
  id: string;
  status: string;
  output: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
  steps: Array<{ id: string; status: string; attempts: number; output: unknown; error: unknown }>;
  approvals: Array<{ id: string; status: string; decision: string | null }>;
}

/** One run event as the API returns it. */
export interface EventView {
  seq: number;
  type: string;
  stepId: string | null;
  data: Record<string, unknown>;
  createdAt: string;
}

/** All events of a run, via `GET /v1/runs/:id/events`. */
export async function runEvents(stack: Pick<Stack, 'baseUrl' | 'apiKey'>, runId: string): Promise<EventView[]> {
  const { body } = await api<{ items: EventView[] }>(stack, 'GET', `/v1/runs/${runId}/events`);
  return body.items;
}
