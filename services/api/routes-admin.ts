/**
 * Administration of an organization (`admin` scope): its API keys with identities and roles
 * (create, list, revoke, rotate); inbound integrations. Another organization's key is a 404.
 */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { NotFoundError } from '../../lib/index.js';
import { createApiKey, createIntegration, listApiKeys, revokeApiKey, rotateApiKey, type StoreDeps } from '../store/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { parseBody } from './validate.js';
import { documentRoute, ItemsOf, UuidParam } from './openapi.js';
import { ApiKeySummary, CreatedApiKey, RotatedApiKey } from './openapi-schemas.js';

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

/** Longest grace period of a rotation, in seconds (7 days). */
const MAX_GRACE_SECONDS = 7 * 24 * 3600;

const RotateBody = z.strictObject({
  graceSeconds: z
    .number({ error: `expected whole seconds from 0 to ${MAX_GRACE_SECONDS}` })
    .int({ error: `expected whole seconds from 0 to ${MAX_GRACE_SECONDS}` })
    .min(0, { error: `expected whole seconds from 0 to ${MAX_GRACE_SECONDS}` })
    .max(MAX_GRACE_SECONDS, { error: `expected whole seconds from 0 to ${MAX_GRACE_SECONDS}` })
    .default(0)
    .meta({ description: 'How long the old key keeps working, in seconds (default 0: revoked at once)' }),
});

const KeyId = z.object({ id: UuidParam });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The `:id` of a key route; anything but a UUID names no key (404). */
function keyIdParam(req: Request): string {
  const id = String(req.params.id ?? '');
  if (!UUID.test(id)) throw new NotFoundError(`API key ${id} not found`, { field: 'id' });
  return id;
}

const CreateIntegrationBody = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, { error: 'expected a name such as "slack-approvals"' }),
  roles: z.array(Role).default([]),
});

export function adminApiRouter(deps: Pick<StoreDeps, 'database'>, auth: ApiKeyAuthenticator): Router {
  const router = Router();

  documentRoute({ method: 'post', path: '/v1/api-keys', summary: 'Create an API key (shown once)', tags: ['admin'], scope: 'admin', body: CreateApiKeyBody, responses: { 201: { description: 'The key, shown only in this answer', schema: CreatedApiKey }, 400: { description: 'Invalid body (named field)' } } });
  router.post('/v1/api-keys', requireApiKey(auth, 'admin'), async (req, res) => {
    const body = parseBody(CreateApiKeyBody, req.body);
    res.status(201).json(await createApiKey(deps, principalOf(req).organizationId, body));
  });

  documentRoute({ method: 'get', path: '/v1/api-keys', summary: "The organization's API keys, newest first (revoked ones too)", tags: ['admin'], scope: 'admin', responses: { 200: { description: 'Keys (never the key or its hash)', schema: ItemsOf(ApiKeySummary) } } });
  router.get('/v1/api-keys', requireApiKey(auth, 'admin'), async (req, res) => {
    res.json({ items: await listApiKeys(deps, principalOf(req).organizationId) });
  });

  documentRoute({ method: 'delete', path: '/v1/api-keys/:id', summary: 'Revoke an API key', description: 'Every API node refuses the key within a second (at once, normally). Revoking a revoked key changes nothing.', tags: ['admin'], scope: 'admin', params: KeyId, responses: { 204: { description: 'Revoked' }, 404: { description: "No such key in the caller's organization" } } });
  router.delete('/v1/api-keys/:id', requireApiKey(auth, 'admin'), async (req, res) => {
    // Other nodes hear of it through Postgres (NOTIFY at commit); this one forgets it now.
    auth.forget(await revokeApiKey(deps, principalOf(req).organizationId, keyIdParam(req)));
    res.status(204).end();
  });

  documentRoute({ method: 'post', path: '/v1/api-keys/:id/rotate', summary: 'Rotate an API key', description: 'A new key (shown once) with the same name, subject, scopes and roles; the old key is revoked at once, or after `graceSeconds`.', tags: ['admin'], scope: 'admin', params: KeyId, body: RotateBody, responses: { 201: { description: 'The new key, shown only in this answer', schema: RotatedApiKey }, 400: { description: 'Invalid graceSeconds' }, 404: { description: "No such key in the caller's organization" }, 409: { description: 'The key is already revoked (or rotated, in its grace period)' } } });
  router.post('/v1/api-keys/:id/rotate', requireApiKey(auth, 'admin'), async (req, res) => {
    const id = keyIdParam(req);
    const { graceSeconds } = parseBody(RotateBody, req.body);
    const { rotated, replacedKeyHash } = await rotateApiKey(deps, principalOf(req).organizationId, id, graceSeconds);
    auth.forget(replacedKeyHash);
    res.status(201).json(rotated);
  });

  documentRoute({ method: 'post', path: '/v1/integrations', summary: 'Register a trusted integration', tags: ['admin'], scope: 'admin', body: CreateIntegrationBody, responses: { 201: { description: 'The integration and its whsec_ secret', schema: z.object({ id: z.string(), name: z.string(), roles: z.array(z.string()), secret: z.string() }) }, 400: { description: 'Invalid body (named field)' } } });
  router.post('/v1/integrations', requireApiKey(auth, 'admin'), async (req, res) => {
    const body = parseBody(CreateIntegrationBody, req.body);
    const row = await createIntegration(deps, principalOf(req).organizationId, body);
    res.status(201).json({ id: row.id, name: row.name, roles: row.roles, secret: row.secret });
  });

  return router;
}
