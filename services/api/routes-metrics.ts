/**
 * `GET /metrics`: the Prometheus exposition of this process (no auth, like `/healthz`). Before
 * rendering, the gauges read from Redis and Postgres are refreshed: `baton_queue_jobs`,
 * `baton_approvals_pending`, `baton_approval_oldest_age_seconds`.
 */
import { Router } from 'express';
import { z } from 'zod';
import { renderMetrics, setScrapeGauges } from '../../lib/index.js';
import { queueJobCounts } from '../../queues/index.js';
import { pendingApprovalGauges } from '../store/index.js';
import type { EngineDeps } from '../engine/index.js';
import { documentRoute } from './openapi.js';

export function metricsRouter(deps: EngineDeps): Router {
  const router = Router();
  documentRoute({
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics',
    description: 'Prometheus text exposition (version 0.0.4): Node default metrics and the `baton_*` series (README *Observability*).',
    tags: ['operations'],
    auth: 'none',
    responses: { 200: { description: 'The metrics', contentType: 'text/plain; version=0.0.4', schema: z.string() } },
  });
  router.get('/metrics', async (_req, res) => {
    const [queueJobs, approvals] = await Promise.all([queueJobCounts(deps.queues), pendingApprovalGauges(deps.database.db)]);
    setScrapeGauges({ queueJobs, approvalsPending: approvals.pending, approvalOldestAgeSeconds: approvals.oldestAgeSeconds });
    const { contentType, body } = await renderMetrics();
    res.type(contentType).send(body);
  });
  return router;
}
