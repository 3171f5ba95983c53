/**
 * Webhook subscriptions of an organization and their delivery log (issue 9 item 4): CRUD, the
 * event-pattern rules, and reads of `webhook_deliveries`. Delivering is the engine's
 * (`services/engine/webhooks.ts`). Signing secrets are `whsec_` + 32 random bytes (base64, as
 * Standard Webhooks specifies), sealed under `BATON_SECRETS_KEY` and shown once, at creation.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { and, desc, eq, sql } from 'drizzle-orm';
import { ConfigError, NotFoundError, ValidationError, openSecret, registerSensitiveValues, sealSecret } from '../../lib/index.js';
import { webhookDeliveries, webhookSubscriptions, type Db } from '../../db/index.js';

/** Every run event type a subscription may name (SPEC O1). */
export const WEBHOOK_EVENT_TYPES = [
  'run.throttled',
  'run.queued',
  'run.started',
  'run.completed',
  'run.failed',
  'run.cancelled',
  'run.resumed',
  'run.cancelling',
  'step.queued',
  'step.started',
  'step.progress',
  'step.retrying',
  'step.completed',
  'step.failed',
  'step.skipped',
  'step.cancelled',
  'checkpoint.requested',
  'checkpoint.responded',
  'checkpoint.reminded',
  'checkpoint.resolved',
  'checkpoint.expired',
] as const;

const PREFIXES = new Set(WEBHOOK_EVENT_TYPES.map((t) => t.split('.')[0]));

/**
 * Check event patterns: an exact type (`run.completed`), a family (`step.*`) or everything (`*`).
 * @throws {ValidationError} field `events.<i>` for an unknown type or family, `events` when empty.
 */
export function checkEventPatterns(patterns: readonly string[]): void {
  if (patterns.length === 0) throw new ValidationError('events: give at least one event pattern, e.g. ["run.*"]', { field: 'events' });
  patterns.forEach((p, i) => {
    const family = p.endsWith('.*') ? p.slice(0, -2) : undefined;
    const known = p === '*' || (family !== undefined && PREFIXES.has(family)) || (WEBHOOK_EVENT_TYPES as readonly string[]).includes(p);
    if (!known) {
      throw new ValidationError(`events.${i}: "${p}" is not an event type, a family such as "step.*", or "*"`, { field: `events.${i}` });
    }
  });
}

/** Whether event `type` matches one of `patterns`. */
export function matchesEventPatterns(patterns: readonly string[], type: string): boolean {
  return patterns.some((p) => p === '*' || p === type || (p.endsWith('.*') && type.startsWith(p.slice(0, -1))));
}

/** A subscription as the API shows it (never its secret). */
export interface WebhookSubscriptionView {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

type SubscriptionRow = typeof webhookSubscriptions.$inferSelect;

function viewOf(row: SubscriptionRow): WebhookSubscriptionView {
  return {
    id: row.id,
    url: row.url,
    events: row.events,
    description: row.description,
    enabled: row.enabled,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

const aadOf = (organizationId: string, id: string) => `webhook-subscription/${organizationId}/${id}`;

/** A new subscription's fields. */
export interface SubscriptionInput {
  url: string;
  events: string[];
  description?: string | undefined;
}

/**
 * Create a subscription with a fresh signing secret.
 * @param key - the 32-byte secrets key (`config.secrets.key`).
 * @returns the subscription and its `whsec_…` secret (shown only here).
 * @throws {ValidationError} field `events.<i>`.
 */
export async function createSubscription(
  db: Db,
  key: Buffer,
  organizationId: string,
  input: SubscriptionInput,
): Promise<WebhookSubscriptionView & { secret: string }> {
  checkEventPatterns(input.events);
  const id = randomUUID();
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  registerSensitiveValues([secret]);
  const [row] = await db
    .insert(webhookSubscriptions)
    .values({
      id,
      organizationId,
      url: input.url,
      events: [...new Set(input.events)],
      description: input.description ?? null,
      sealedSecret: sealSecret(key, secret, aadOf(organizationId, id)),
    })
    .returning();
  if (!row) throw new Error('webhook subscription was not stored');
  return { ...viewOf(row), secret };
}

/** The organization's subscriptions, newest first. */
export async function listSubscriptions(db: Db, organizationId: string): Promise<WebhookSubscriptionView[]> {
  const rows = await db
    .select()
    .from(webhookSubscriptions)
    .where(eq(webhookSubscriptions.organizationId, organizationId))
    .orderBy(desc(webhookSubscriptions.createdAt));
  return rows.map(viewOf);
}

/**
 * One subscription of the organization.
 * @throws {NotFoundError} when it does not exist there.
 */
export async function getSubscription(db: Db, organizationId: string, id: string): Promise<WebhookSubscriptionView> {
  const [row] = await db
    .select()
    .from(webhookSubscriptions)
    .where(and(eq(webhookSubscriptions.id, id), eq(webhookSubscriptions.organizationId, organizationId)));
  if (!row) throw new NotFoundError(`webhook ${id} not found`);
  return viewOf(row);
}

/**
 * Change a subscription's URL, events, description or `enabled` flag. Pending deliveries go to
 * the new URL; a disabled subscription's pending deliveries are closed as failed when next due.
 * @throws {NotFoundError} when it does not exist in the organization.
 * @throws {ValidationError} field `events.<i>`.
 */
export async function updateSubscription(
  db: Db,
  organizationId: string,
  id: string,
  patch: { url?: string | undefined; events?: string[] | undefined; description?: string | null | undefined; enabled?: boolean | undefined },
): Promise<WebhookSubscriptionView> {
  if (patch.events) checkEventPatterns(patch.events);
  const [row] = await db
    .update(webhookSubscriptions)
    .set({
      ...(patch.url === undefined ? {} : { url: patch.url }),
      ...(patch.events === undefined ? {} : { events: [...new Set(patch.events)] }),
      ...(patch.description === undefined ? {} : { description: patch.description }),
      ...(patch.enabled === undefined ? {} : { enabled: patch.enabled }),
      updatedAt: sql`now()`,
    })
    .where(and(eq(webhookSubscriptions.id, id), eq(webhookSubscriptions.organizationId, organizationId)))
    .returning();
  if (!row) throw new NotFoundError(`webhook ${id} not found`);
  return viewOf(row);
}

/**
 * Delete a subscription and its delivery log.
 * @throws {NotFoundError} when it does not exist in the organization.
 */
export async function deleteSubscription(db: Db, organizationId: string, id: string): Promise<void> {
  const deleted = await db
    .delete(webhookSubscriptions)
    .where(and(eq(webhookSubscriptions.id, id), eq(webhookSubscriptions.organizationId, organizationId)))
    .returning({ id: webhookSubscriptions.id });
  if (deleted.length === 0) throw new NotFoundError(`webhook ${id} not found`);
}

/** Whether the organization has at least one enabled subscription. */
export async function hasEnabledSubscription(db: Db, organizationId: string): Promise<boolean> {
  const rows = await db
    .select({ id: webhookSubscriptions.id })
    .from(webhookSubscriptions)
    .where(and(eq(webhookSubscriptions.organizationId, organizationId), eq(webhookSubscriptions.enabled, true)))
    .limit(1);
  return rows.length > 0;
}

/** A subscription with its secret opened, as the delivering worker needs it. */
export interface SubscriptionTarget {
  id: string;
  url: string;
  events: string[];
  enabled: boolean;
  createdAt: Date;
  secret: string;
}

/**
 * The organization's subscriptions with their secrets opened (registered with the logger).
 * @throws {ConfigError} when a sealed secret does not open under `key`.
 */
export async function subscriptionTargets(db: Db, key: Buffer, organizationId: string): Promise<SubscriptionTarget[]> {
  const rows = await db.select().from(webhookSubscriptions).where(eq(webhookSubscriptions.organizationId, organizationId));
  return rows.map((row) => {
    let secret: string;
    try {
      secret = openSecret(key, row.sealedSecret, aadOf(organizationId, row.id));
    } catch (err) {
      throw new ConfigError(`webhook ${row.id}: its secret does not open under BATON_SECRETS_KEY`, { cause: err });
    }
    registerSensitiveValues([secret]);
    return { id: row.id, url: row.url, events: row.events, enabled: row.enabled, createdAt: row.createdAt, secret };
  });
}

/** One entry of the delivery log. */
export interface WebhookDeliveryView {
  id: string;
  webhookId: string | null;
  runId: string;
  seq: number;
  event: string;
  /** pending (not yet sent, or waiting to retry) | delivered | failed (refused, or out of attempts) */
  status: string;
  attempts: number;
  responseStatus: number | null;
  latencyMs: number | null;
  lastError: string | null;
  url: string | null;
  nextAttemptAt: string | null;
  createdAt: string;
  finishedAt: string | null;
}

/** The API view of a delivery row. */
export function deliveryView(row: typeof webhookDeliveries.$inferSelect): WebhookDeliveryView {
  return {
    id: row.id,
    webhookId: row.subscriptionId,
    runId: row.runId,
    seq: row.seq,
    event: row.eventType,
    status: row.status,
    attempts: row.attempts,
    responseStatus: row.responseStatus,
    latencyMs: row.latencyMs,
    lastError: row.lastError,
    url: row.url,
    nextAttemptAt: row.status === 'pending' ? row.nextAttemptAt.toISOString() : null,
    createdAt: row.createdAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
  };
}

/**
 * A subscription's deliveries, newest first (then by run and sequence, descending).
 * @param options.runId - only this run's.
 * @param options.status - only this status.
 * @param options.limit - page size, 1..500.
 * @throws {NotFoundError} when the subscription does not exist in the organization.
 */
export async function listDeliveries(
  db: Db,
  organizationId: string,
  subscriptionId: string,
  options: { runId?: string | undefined; status?: string | undefined; limit: number },
): Promise<WebhookDeliveryView[]> {
  await getSubscription(db, organizationId, subscriptionId);
  const rows = await db
    .select()
    .from(webhookDeliveries)
    .where(
      and(
        eq(webhookDeliveries.subscriptionId, subscriptionId),
        options.runId === undefined ? undefined : eq(webhookDeliveries.runId, options.runId),
        options.status === undefined ? undefined : sql`${webhookDeliveries.status} = ${options.status}`,
      ),
    )
    .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.runId), desc(webhookDeliveries.seq))
    .limit(options.limit);
  return rows.map(deliveryView);
}
