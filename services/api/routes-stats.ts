/** `GET /v1/stats?window=24h`: dashboard figures of the caller's organization over a window. */
import { Router } from 'express';
import { z } from 'zod';
import { parseDurationMs } from '../../lib/index.js';
import { runStats } from '../store/index.js';
import type { EngineDeps } from '../engine/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { documentRoute } from './openapi.js';
import { parseQuery } from './validate.js';

/** Longest window, in milliseconds (92 days). */
const MAX_WINDOW_MS = 92 * 24 * 3600 * 1000;

const StatsQuery = z.strictObject({
  window: z
    .string()
    .refine((v) => (parseDurationMs(v) ?? 0) > 0 && (parseDurationMs(v) ?? 0) <= MAX_WINDOW_MS, {
      error: 'expected a duration from 1s to 92d, such as 15m, 24h or 7d',
    })
    .default('24h')
    .meta({ description: 'How far back to look, e.g. `15m`, `24h`, `7d` (at most 92 days)' }),
});

const Percentiles = z.object({
  count: z.number().int(),
  p50Ms: z.number().nullable(),
  p95Ms: z.number().nullable(),
});

const StatsResponse = z.object({
  window: z.string(),
  from: z.iso.datetime(),
  to: z.iso.datetime(),
  runs: z.array(
    z.object({
      definition: z.string(),
      total: z.number().int().meta({ description: 'Runs created in the window' }),
      byStatus: z.record(z.string(), z.number().int()).meta({ description: 'Runs created in the window, by current status' }),
      duration: Percentiles.meta({ description: 'Durations (start to finish) of runs that finished in the window' }),
    }),
  ),
  steps: z.array(z.object({ agentType: z.string(), duration: Percentiles.meta({ description: 'Step attempts finished in the window (cache hits excluded)' }) })),
  approvals: z.object({ pending: z.number().int(), oldestAgeSeconds: z.number().nullable() }),
});

export function statsRouter(deps: EngineDeps, auth: ApiKeyAuthenticator): Router {
  const router = Router();
  documentRoute({
    method: 'get',
    path: '/v1/stats',
    summary: 'Dashboard figures',
    description:
      'Runs by status per definition (created in the window), p50/p95 durations of runs per definition and of step attempts per agent type (finished in the window), pending approvals and the oldest one\'s age.',
    tags: ['stats'],
    scope: 'runs:read',
    query: StatsQuery,
    responses: { 200: { description: 'The figures', schema: StatsResponse }, 400: { description: '`window` is not a duration from 1s to 92d' } },
  });
  router.get('/v1/stats', requireApiKey(auth, 'runs:read'), async (req, res) => {
    const { window } = parseQuery(StatsQuery, req.query);
    const stats = await runStats(deps.database.db, principalOf(req).organizationId, parseDurationMs(window) ?? 0);
    res.json(StatsResponse.parse({ window, ...stats }));
  });
  return router;
}
