/** Administration (`admin` scope): API keys with identities and roles; inbound integrations. */
import { Router } from 'express';
import { z } from 'zod';
import { createApiKey, createIntegration, type StoreDeps } from '../store/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { parseBody } from './validate.js';
import { documentRoute, AnyObject } from './openapi.js';

const SCOPES = ['runs:write', 'runs:read', 'approvals:decide', 'definitions:write', 'admin'] as const;
const Role = z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, { error: 'expected a role name such as "finance"' });

const CreateApiKeyBody = z.strictObject({
  name: z.string().min(1).max(200),
  subject: z.string().regex(/^(user|service):[A-Za-z0-9._@-]{1,120}$/, { error: 'expected "user:<name>" or "service:<name>"' }),
  scopes: z.array(z.enum(SCOPES)).min(1),
  roles: z.array(Role).default([]),
  rateLimitRunsPerMinute: z
    .number()
    .int()
    .min(0)
    .max(1_000_000_000)
    .optional()
    .meta({ description: 'Run starts per minute for this key alone, in its own bucket (0: unlimited); absent: the organization limit (RATE_LIMIT_RUNS_PER_MINUTE)' }),
});

const CreateIntegrationBody = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, { error: 'expected a name such as "slack-approvals"' }),
  roles: z.array(Role).default([]),
});

export function adminApiRouter(deps: Pick<StoreDeps, 'database'>, auth: ApiKeyAuthenticator): Router {
  const router = Router();

  documentRoute({ method: 'post', path: '/v1/api-keys', summary: 'Create an API key (shown once)', tags: ['admin'], scope: 'admin', body: CreateApiKeyBody, responses: { 201: { description: 'The key', schema: AnyObject }, 400: { description: 'Invalid body (named field)' } } });
  router.post('/v1/api-keys', requireApiKey(auth, 'admin'), async (req, res) => {
    const body = parseBody(CreateApiKeyBody, req.body);
    res.status(201).json(await createApiKey(deps, principalOf(req).organizationId, body));
  });

  documentRoute({ method: 'post', path: '/v1/integrations', summary: 'Register a trusted integration', tags: ['admin'], scope: 'admin', body: CreateIntegrationBody, responses: { 201: { description: 'The integration and its whsec_ secret', schema: z.object({ id: z.string(), name: z.string(), roles: z.array(z.string()), secret: z.string() }) }, 400: { description: 'Invalid body (named field)' } } });
  router.post('/v1/integrations', requireApiKey(auth, 'admin'), async (req, res) => {
    const body = parseBody(CreateIntegrationBody, req.body);
    const row = await createIntegration(deps, principalOf(req).organizationId, body);
    res.status(201).json({ id: row.id, name: row.name, roles: row.roles, secret: row.secret });
  });

  return router;
}
