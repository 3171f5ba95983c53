/**
 * Prometheus metrics of a Baton process (prom-client), in one registry per process:
 * Node's default metrics plus Baton's own series (names and labels as in README *Observability*).
 *
 * Instruments that count events (`baton_step_duration_seconds`, `baton_runs_total`,
 * `baton_webhook_deliveries_total`, `baton_http_request_duration_seconds`) are recorded by the
 * process where the event happens; the gauges read from Postgres and Redis
 * (`baton_queue_jobs`, `baton_approvals_pending`, `baton_approval_oldest_age_seconds`) are set by
 * `web` right before each scrape (see `services/api/routes-metrics.ts`).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from './logger.js';

/** The process's registry (default metrics included). */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry });
// Gauges named `*_total` fail `promtool check metrics` ("non-counter metrics should not have
// _total suffix"); their per-type breakdowns `nodejs_active_{handles,requests,resources}` stay.
for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
  metricsRegistry.removeSingleMetric(name);
}

/** Buckets of step durations, in seconds: 5 ms … 10 min. */
const STEP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Buckets of HTTP request durations, in seconds: 1 ms … 30 s. */
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** How a step attempt ended, as the `outcome` label of `baton_step_duration_seconds`. */
export type StepOutcome = 'completed' | 'failed' | 'timed_out' | 'cancelled';

/** How a webhook delivery attempt ended, as the `outcome` label of `baton_webhook_deliveries_total`. */
export type WebhookOutcome = 'delivered' | 'retrying' | 'failed' | 'skipped';

const stepDuration = new Histogram({
  name: 'baton_step_duration_seconds',
  help: 'Duration of one step attempt (the agent call), by agent type and outcome.',
  labelNames: ['agent_type', 'outcome'] as const,
  buckets: STEP_BUCKETS,
  registers: [metricsRegistry],
});

const runsTotal = new Counter({
  name: 'baton_runs_total',
  help: 'Runs that reached a final status (completed, failed, cancelled), by definition slug.',
  labelNames: ['definition', 'status'] as const,
  registers: [metricsRegistry],
});

const webhookDeliveries = new Counter({
  name: 'baton_webhook_deliveries_total',
  help: 'Webhook delivery attempts, by outcome (delivered, retrying, failed, skipped).',
  labelNames: ['outcome'] as const,
  registers: [metricsRegistry],
});

const httpDuration = new Histogram({
  name: 'baton_http_request_duration_seconds',
  help: 'Duration of HTTP requests served by web, by route pattern, method and status code.',
  labelNames: ['route', 'method', 'status'] as const,
  buckets: HTTP_BUCKETS,
  registers: [metricsRegistry],
});

const queueJobs = new Gauge({
  name: 'baton_queue_jobs',
  help: 'BullMQ jobs per queue and state (read from Redis at scrape time, by web).',
  labelNames: ['queue', 'state'] as const,
  registers: [metricsRegistry],
});

const approvalsPending = new Gauge({
  name: 'baton_approvals_pending',
  help: 'Checkpoint approvals waiting for a decision (all organizations; by web).',
  registers: [metricsRegistry],
});

const approvalOldestAge = new Gauge({
  name: 'baton_approval_oldest_age_seconds',
  help: 'Age of the oldest pending approval, in seconds (0 when none is pending; by web).',
  registers: [metricsRegistry],
});

/** Record one step attempt's duration (`seconds`) under its agent type and outcome. */
export function observeStepDuration(agentType: string, outcome: StepOutcome, seconds: number): void {
  stepDuration.observe({ agent_type: agentType, outcome }, seconds);
}

/** Count a run that reached final `status` (`completed`, `failed` or `cancelled`). */
export function countRunFinished(definition: string, status: string): void {
  runsTotal.inc({ definition, status });
}

/** Count one webhook delivery attempt. */
export function countWebhookDelivery(outcome: WebhookOutcome, count = 1): void {
  if (count > 0) webhookDeliveries.inc({ outcome }, count);
}

/** Record one served HTTP request (`route` is the pattern, e.g. `/v1/runs/:id`; `seconds` its duration). */
export function observeHttpRequest(route: string, method: string, status: number, seconds: number): void {
  httpDuration.observe({ route, method, status: String(status) }, seconds);
}

/** What the scrape-time gauges show; see {@link setScrapeGauges}. */
export interface ScrapeGauges {
  /** Job counts per queue and BullMQ state. */
  queueJobs: ReadonlyArray<{ queue: string; state: string; count: number }>;
  approvalsPending: number;
  /** Age of the oldest pending approval in seconds, 0 when none. */
  approvalOldestAgeSeconds: number;
}

/** Replace the scrape-time gauges' values (called by `web` before rendering `/metrics`). */
export function setScrapeGauges(values: ScrapeGauges): void {
  queueJobs.reset();
  for (const { queue, state, count } of values.queueJobs) queueJobs.set({ queue, state }, count);
  approvalsPending.set(values.approvalsPending);
  approvalOldestAge.set(values.approvalOldestAgeSeconds);
}

/** The registry in the Prometheus text exposition format (`contentType` is its `Content-Type`). */
export async function renderMetrics(): Promise<{ contentType: string; body: string }> {
  return { contentType: metricsRegistry.contentType, body: await metricsRegistry.metrics() };
}

/** A running metrics server. */
export interface MetricsServer {
  /** The port it listens on (useful when started with port 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * Serve `GET /metrics` (this process's registry) on `port`, on every interface, for a worker
 * process (`METRICS_PORT`). Other paths answer 404.
 * @throws the `listen` error (e.g. `EADDRINUSE`).
 */
export async function serveMetrics(port: number, logger: Logger): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    void renderMetrics().then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
      (err: unknown) => {
        logger.error({ err }, 'could not render metrics');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
