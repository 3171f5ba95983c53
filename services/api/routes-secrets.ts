/**
 * `/v1/secrets`: create or replace (`admin`), list names (`runs:read`: whoever starts runs may see
 * which secrets exist), delete (`admin`). A value is accepted once and never returned.
 */
import { Router } from 'express';
import { z } from 'zod';
import { checkSecretName, deleteSecret, listSecrets, putSecret } from '../store/index.js';
import type { EngineDeps } from '../engine/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { parseBody } from './validate.js';
import { documentRoute, ItemsOf } from './openapi.js';
import { SecretSummary } from './openapi-schemas.js';

const PutSecretBody = z.strictObject({
  name: z.string({ error: 'expected a secret name such as OPENAI_API_KEY' }),
  value: z.string({ error: 'expected the secret value as a string' }),
});

export function secretsRouter(deps: EngineDeps, auth: ApiKeyAuthenticator): Router {
  const router = Router();
  const db = deps.database.db;

  documentRoute({ method: 'post', path: '/v1/secrets', summary: 'Create or replace a secret', tags: ['secrets'], scope: 'admin', body: PutSecretBody, responses: { 201: { description: 'Saved (the value is never returned)', schema: SecretSummary }, 400: { description: 'Invalid name or value' } } });
  router.post('/v1/secrets', requireApiKey(auth, 'admin'), async (req, res) => {
    const body = parseBody(PutSecretBody, req.body);
    const saved = await putSecret(db, deps.config.secrets.key, principalOf(req).organizationId, body.name, body.value);
    res.status(201).json(saved);
  });

  documentRoute({ method: 'get', path: '/v1/secrets', summary: 'Secret names', tags: ['secrets'], scope: 'runs:read', responses: { 200: { description: 'Names only', schema: ItemsOf(SecretSummary) } } });
  router.get('/v1/secrets', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json({ items: await listSecrets(db, principalOf(req).organizationId) });
  });

  documentRoute({ method: 'delete', path: '/v1/secrets/:name', summary: 'Delete a secret', tags: ['secrets'], scope: 'admin', responses: { 204: { description: 'Deleted' }, 404: { description: 'No such secret' } } });
  router.delete('/v1/secrets/:name', requireApiKey(auth, 'admin'), async (req, res) => {
    const name = String(req.params.name ?? '');
    checkSecretName(name);
    await deleteSecret(db, principalOf(req).organizationId, name);
    res.status(204).end();
  });

  return router;
}
