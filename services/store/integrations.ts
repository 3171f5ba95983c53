/**
 * Trusted integrations (issue 4): systems that POST decisions signed per Standard Webhooks
 * (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with their own `whsec_…` secret.
 * The `standardwebhooks` package checks the signature and a ±5 min timestamp tolerance; the
 * decision transaction records the `webhook-id`, so a replayed message is refused.
 */
import { randomBytes } from 'node:crypto';
import { and, eq, isNull } from 'drizzle-orm';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { ConflictError, NotFoundError, UnauthorizedError } from '../../lib/index.js';
import { integrations } from '../../db/index.js';
import type { StoreDeps } from './deps.js';

export type IntegrationRow = typeof integrations.$inferSelect;

/** A verified inbound message. */
export interface VerifiedMessage {
  integration: IntegrationRow;
  /** The `webhook-id` header: unique per message, used against replays. */
  messageId: string;
}

/**
 * Register an integration and return its secret (shown once; keep it in the integration).
 * @throws {ConflictError} when the organization already has an integration of that name.
 */
export async function createIntegration(
  deps: Pick<StoreDeps, 'database'>,
  organizationId: string,
  request: { name: string; roles: string[] },
): Promise<IntegrationRow> {
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const [row] = await deps.database.db
    .insert(integrations)
    .values({ organizationId, name: request.name, secret, roles: request.roles })
    .onConflictDoNothing()
    .returning();
  if (!row) throw new ConflictError(`an integration named "${request.name}" already exists`, { field: 'name' });
  return row;
}

/**
 * Verify a signed request from integration `integrationId`.
 * @param rawBody - the exact bytes received (the signature covers them).
 * @throws {NotFoundError} unknown or revoked integration.
 * @throws {UnauthorizedError} bad signature, missing headers, or timestamp outside the tolerance.
 */
export async function verifyIntegrationMessage(
  deps: Pick<StoreDeps, 'database'>,
  integrationId: string,
  rawBody: Buffer,
  headers: Record<string, string | undefined>,
): Promise<VerifiedMessage> {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const [integration] = UUID.test(integrationId)
    ? await deps.database.db
        .select()
        .from(integrations)
        .where(and(eq(integrations.id, integrationId), isNull(integrations.revokedAt)))
    : [];
  if (!integration) throw new NotFoundError(`integration ${integrationId} not found`);
  const messageId = headers['webhook-id'];
  const signed = {
    'webhook-id': messageId ?? '',
    'webhook-timestamp': headers['webhook-timestamp'] ?? '',
    'webhook-signature': headers['webhook-signature'] ?? '',
  };
  try {
    new Webhook(integration.secret).verify(rawBody, signed);
  } catch (err) {
    const reason = err instanceof WebhookVerificationError ? err.message : 'invalid signature';
    throw new UnauthorizedError(`integration signature rejected: ${reason}`);
  }
  if (!messageId) throw new UnauthorizedError('missing webhook-id');
  return { integration, messageId };
}
