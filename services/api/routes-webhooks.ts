/**
 * Webhook subscriptions (issue 9 item 4), all `admin`: `POST /v1/webhooks {url, events,
 * description?}` → 201 `{…, secret: "whsec_…"}` (the secret is shown only then); list, read,
 * `PATCH` (url, events, description, enabled), `DELETE`; the delivery log
 * `GET /v1/webhooks/:id/deliveries`; `POST /v1/webhook-deliveries/:id/redeliver`.
 */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { NotFoundError } from '../../lib/index.js';
import { forgetSubscriptionCache, redeliverWebhook, type EngineDeps } from '../engine/index.js';
import { createSubscription, deleteSubscription, getSubscription, listDeliveries, listSubscriptions, updateSubscription } from '../store/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { limitParam, parseBody, parseQuery } from './validate.js';
import { documentRoute, ItemsOf, UuidParam } from './openapi.js';
import { CreatedWebhookSubscription, WebhookDelivery, WebhookSubscription } from './openapi-schemas.js';

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
const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;

/** The delivery-log query; unknown parameters are ignored, a repeated one is refused. */
const DeliveriesQuery = z.object({
  runId: z.string({ error: 'must be given once' }).regex(UUID, { error: 'expected a run id' }).optional().meta({ description: 'Only the deliveries of this run' }),
  status: z.enum(DELIVERY_STATUSES, { error: `expected one of ${DELIVERY_STATUSES.join(', ')}` }).optional(),
  limit: limitParam(500, 100),
});

const WebhookId = z.object({ id: UuidParam });

function idParam(req: Request, what: string): string {
  const id = String(req.params.id ?? '');
  if (!UUID.test(id)) throw new NotFoundError(`${what} ${id} not found`);
  return id;
}

export function webhooksRouter(deps: EngineDeps, auth: ApiKeyAuthenticator): Router {
  const router = Router();
  const db = deps.database.db;
  const admin = requireApiKey(auth, 'admin');

  documentRoute({ method: 'post', path: '/v1/webhooks', summary: 'Subscribe a URL to run events', tags: ['webhooks'], scope: 'admin', body: CreateBody, responses: { 201: { description: 'Created; the signing secret is shown only here', schema: CreatedWebhookSubscription }, 400: { description: 'Invalid url, events (an unknown pattern names `events.<i>`) or description' } } });
  router.post('/v1/webhooks', admin, async (req, res) => {
    const body = parseBody(CreateBody, req.body);
    const organizationId = principalOf(req).organizationId;
    const created = await createSubscription(db, deps.config.secrets.key, organizationId, body);
    forgetSubscriptionCache(deps, organizationId);
    res.status(201).json(created);
  });

  documentRoute({ method: 'get', path: '/v1/webhooks', summary: "The organization's webhook subscriptions, newest first", tags: ['webhooks'], scope: 'admin', responses: { 200: { description: 'Subscriptions (never their secrets)', schema: ItemsOf(WebhookSubscription) } } });
  router.get('/v1/webhooks', admin, async (req, res) => {
    res.json({ items: await listSubscriptions(db, principalOf(req).organizationId) });
  });

  documentRoute({ method: 'get', path: '/v1/webhooks/:id', summary: 'One webhook subscription', tags: ['webhooks'], scope: 'admin', params: WebhookId, responses: { 200: { description: 'The subscription (never its secret)', schema: WebhookSubscription }, 404: { description: 'No such subscription' } } });
  router.get('/v1/webhooks/:id', admin, async (req, res) => {
    res.json(await getSubscription(db, principalOf(req).organizationId, idParam(req, 'webhook')));
  });

  documentRoute({ method: 'patch', path: '/v1/webhooks/:id', summary: 'Change a webhook subscription', description: 'Pending deliveries go to the new URL; a disabled subscription gets no new events and its pending deliveries close as `failed`.', tags: ['webhooks'], scope: 'admin', params: WebhookId, body: UpdateBody, responses: { 200: { description: 'The updated subscription', schema: WebhookSubscription }, 400: { description: 'Invalid field (named)' }, 404: { description: 'No such subscription' } } });
  router.patch('/v1/webhooks/:id', admin, async (req, res) => {
    const id = idParam(req, 'webhook');
    const body = parseBody(UpdateBody, req.body);
    const organizationId = principalOf(req).organizationId;
    const updated = await updateSubscription(db, organizationId, id, body);
    forgetSubscriptionCache(deps, organizationId);
    res.json(updated);
  });

  documentRoute({ method: 'delete', path: '/v1/webhooks/:id', summary: 'Delete a webhook subscription and its delivery log', tags: ['webhooks'], scope: 'admin', params: WebhookId, responses: { 204: { description: 'Deleted' }, 404: { description: 'No such subscription' } } });
  router.delete('/v1/webhooks/:id', admin, async (req, res) => {
    const organizationId = principalOf(req).organizationId;
    await deleteSubscription(db, organizationId, idParam(req, 'webhook'));
    forgetSubscriptionCache(deps, organizationId);
    res.status(204).end();
  });

  documentRoute({ method: 'get', path: '/v1/webhooks/:id/deliveries', summary: "A subscription's delivery log, newest first", tags: ['webhooks'], scope: 'admin', params: WebhookId, query: DeliveriesQuery, responses: { 200: { description: 'Deliveries', schema: ItemsOf(WebhookDelivery) }, 400: { description: 'Invalid parameter (named)' }, 404: { description: 'No such subscription' } } });
  router.get('/v1/webhooks/:id/deliveries', admin, async (req, res) => {
    const id = idParam(req, 'webhook');
    const { runId, status, limit } = parseQuery(DeliveriesQuery, req.query);
    res.json({ items: await listDeliveries(db, principalOf(req).organizationId, id, { runId, status, limit }) });
  });

  documentRoute({ method: 'post', path: '/v1/webhook-deliveries/:id/redeliver', summary: 'Send a delivery again', tags: ['webhooks'], scope: 'admin', params: WebhookId, responses: { 202: { description: 'The delivery, pending again with a fresh budget of attempts', schema: WebhookDelivery }, 404: { description: 'No such delivery' }, 409: { description: 'The delivery is still pending' } } });
  router.post('/v1/webhook-deliveries/:id/redeliver', admin, async (req, res) => {
    res.status(202).json(await redeliverWebhook(deps, principalOf(req).organizationId, idParam(req, 'webhook delivery')));
  });

  return router;
}
