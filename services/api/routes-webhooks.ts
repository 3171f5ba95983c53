/**
 * Webhook subscriptions (issue 9 item 4), all `admin`: `POST /v1/webhooks {url, events,
 * description?}` → 201 `{…, secret: "whsec_…"}` (the secret is shown only then); list, read,
 * `PATCH` (url, events, description, enabled), `DELETE`; the delivery log
 * `GET /v1/webhooks/:id/deliveries`; `POST /v1/webhook-deliveries/:id/redeliver`.
 */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { NotFoundError, ValidationError } from '../../lib/index.js';
import { forgetSubscriptionCache, redeliverWebhook, type EngineDeps } from '../engine/index.js';
import { createSubscription, deleteSubscription, getSubscription, listDeliveries, listSubscriptions, updateSubscription } from '../store/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { parseBody, queryString } from './validate.js';

const Url = z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).max(2000);
const Events = z.array(z.string().min(1).max(100)).min(1, { error: 'give at least one event pattern, e.g. ["run.*"]' }).max(50);
const Description = z.string().max(500);

const CreateBody = z.strictObject({ url: Url, events: Events, description: Description.optional() });
const UpdateBody = z.strictObject({
  url: Url.optional(),
  events: Events.optional(),
  description: Description.nullable().optional(),
  enabled: z.boolean().optional(),
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'];

function idParam(req: Request, what: string): string {
  const id = String(req.params.id ?? '');
  if (!UUID.test(id)) throw new NotFoundError(`${what} ${id} not found`);
  return id;
}

export function webhooksRouter(deps: EngineDeps, auth: ApiKeyAuthenticator): Router {
  const router = Router();
  const db = deps.database.db;
  const admin = requireApiKey(auth, 'admin');

  router.post('/v1/webhooks', admin, async (req, res) => {
    const body = parseBody(CreateBody, req.body);
    const organizationId = principalOf(req).organizationId;
    const created = await createSubscription(db, deps.config.secrets.key, organizationId, body);
    forgetSubscriptionCache(deps, organizationId);
    res.status(201).json(created);
  });

  router.get('/v1/webhooks', admin, async (req, res) => {
    res.json({ items: await listSubscriptions(db, principalOf(req).organizationId) });
  });

  router.get('/v1/webhooks/:id', admin, async (req, res) => {
    res.json(await getSubscription(db, principalOf(req).organizationId, idParam(req, 'webhook')));
  });

  router.patch('/v1/webhooks/:id', admin, async (req, res) => {
    const id = idParam(req, 'webhook');
    const body = parseBody(UpdateBody, req.body);
    const organizationId = principalOf(req).organizationId;
    const updated = await updateSubscription(db, organizationId, id, body);
    forgetSubscriptionCache(deps, organizationId);
    res.json(updated);
  });

  router.delete('/v1/webhooks/:id', admin, async (req, res) => {
    const organizationId = principalOf(req).organizationId;
    await deleteSubscription(db, organizationId, idParam(req, 'webhook'));
    forgetSubscriptionCache(deps, organizationId);
    res.status(204).end();
  });

  router.get('/v1/webhooks/:id/deliveries', admin, async (req, res) => {
    const id = idParam(req, 'webhook');
    const status = queryString(req, 'status');
    if (status !== undefined && !DELIVERY_STATUSES.includes(status)) {
      throw new ValidationError(`status must be one of ${DELIVERY_STATUSES.join(', ')}`, { field: 'status' });
    }
    const runId = queryString(req, 'runId');
    if (runId !== undefined && !UUID.test(runId)) throw new ValidationError('runId must be a run id', { field: 'runId' });
    const limitText = queryString(req, 'limit');
    const limit = limitText === undefined ? 100 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
      throw new ValidationError('limit must be an integer from 1 to 500', { field: 'limit' });
    }
    res.json({ items: await listDeliveries(db, principalOf(req).organizationId, id, { runId, status, limit }) });
  });

  router.post('/v1/webhook-deliveries/:id/redeliver', admin, async (req, res) => {
    res.status(202).json(await redeliverWebhook(deps, principalOf(req).organizationId, idParam(req, 'webhook delivery')));
  });

  return router;
}
