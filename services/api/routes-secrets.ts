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

const PutSecretBody = z.strictObject({
  name: z.string({ error: 'expected a secret name such as OPENAI_API_KEY' }),
  value: z.string({ error: 'expected the secret value as a string' }),
});

export function secretsRouter(deps: EngineDeps, auth: ApiKeyAuthenticator): Router {
  const router = Router();
  const db = deps.database.db;

  router.post('/v1/secrets', requireApiKey(auth, 'admin'), async (req, res) => {
    const body = parseBody(PutSecretBody, req.body);
    const saved = await putSecret(db, deps.config.secrets.key, principalOf(req).organizationId, body.name, body.value);
    res.status(201).json(saved);
  });

  router.get('/v1/secrets', requireApiKey(auth, 'runs:read'), async (req, res) => {
    res.json({ items: await listSecrets(db, principalOf(req).organizationId) });
  });

  router.delete('/v1/secrets/:name', requireApiKey(auth, 'admin'), async (req, res) => {
    const name = String(req.params.name ?? '');
    checkSecretName(name);
    await deleteSecret(db, principalOf(req).organizationId, name);
    res.status(204).end();
  });

  return router;
}
