/**
 * Platform administration (the platform-admin key, `BATON_ADMIN_API_KEY`; an organization's key
 * gets 403): create organizations, each with its first admin key (shown once), and list them.
 */
import { Router } from 'express';
import { z } from 'zod';
import { createOrganization, listOrganizations, type StoreDeps } from '../store/index.js';
import { requirePlatformAdmin, type ApiKeyAuthenticator } from './auth.js';
import { parseBody } from './validate.js';
import { documentRoute, ItemsOf } from './openapi.js';
import { CreatedOrganization, OrganizationView } from './openapi-schemas.js';

const CreateOrganizationBody = z.strictObject({
  slug: z
    .string({ error: 'expected a slug such as "acme"' })
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, { error: 'expected 1-63 lowercase letters, digits or "-", not starting with "-", such as "acme"' }),
  name: z.string({ error: 'expected a name' }).trim().min(1, { error: 'expected a name' }).max(200, { error: 'expected at most 200 characters' }),
});

export function organizationsRouter(deps: Pick<StoreDeps, 'database'>, auth: ApiKeyAuthenticator): Router {
  const router = Router();
  const platform = requirePlatformAdmin(auth);

  documentRoute({ method: 'post', path: '/v1/organizations', summary: 'Create an organization with its first admin key', description: 'The first key has every scope and acts as `service:admin`; it is shown only in this answer.', tags: ['platform'], auth: 'platformKey', body: CreateOrganizationBody, responses: { 201: { description: 'The organization and its first key', schema: CreatedOrganization }, 400: { description: 'Invalid slug or name (named field)' }, 409: { description: 'The slug is taken (field `slug`)' } } });
  router.post('/v1/organizations', platform, async (req, res) => {
    const body = parseBody(CreateOrganizationBody, req.body);
    res.status(201).json(await createOrganization(deps, body));
  });

  documentRoute({ method: 'get', path: '/v1/organizations', summary: 'Every organization, oldest first', tags: ['platform'], auth: 'platformKey', responses: { 200: { description: 'Organizations', schema: ItemsOf(OrganizationView) } } });
  router.get('/v1/organizations', platform, async (_req, res) => {
    res.json({ items: await listOrganizations(deps) });
  });

  return router;
}
