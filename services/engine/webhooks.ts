/**
 * Outgoing webhooks: one message per run event, signed per Standard Webhooks
 * (https://www.standardwebhooks.com: `webhook-id`, `webhook-timestamp`, `webhook-signature:
 * v1,<base64 HMAC-SHA256>`) with `BATON_WEBHOOK_SECRET`, using the `standardwebhooks` package.
 */
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import { Webhook } from 'standardwebhooks';
import { runEvents } from '../../db/index.js';
import { webhookJobId } from '../../queues/index.js';
import { approvalNotice, starterAudience } from './checkpoints.js';
import type { EngineDeps } from './deps.js';
import { getEvent } from '../store/index.js';

/** A signed webhook message, ready to POST. */
export interface WebhookMessage {
  url: string;
  /** Raw JSON body `{type, timestamp, data}`; sign and send these exact bytes. */
  body: string;
  headers: Record<string, string>;
}

/**
 * Build the signed message for run event `seq`, or `undefined` when the run has no webhook URL
 * or the event is gone. For `checkpoint.requested` and `checkpoint.reminded`, `data.approval`
 * carries the `decideUrl`(s) the run's starter may hold — its own approver links, none when the
 * checkpoint refuses self-approval — with freshly minted (deterministic) tokens, which never touch
 * storage. Other approvers fetch their links with their own key (`GET /v1/approvals/:id/links`).
 */
export async function webhookMessage(deps: EngineDeps, runId: string, seq: number): Promise<WebhookMessage | undefined> {
  const row = await getEvent(deps, runId, seq);
  if (!row?.webhookUrl) return undefined;
  const { event } = row;
  const data: Record<string, unknown> = {
    runId,
    seq: event.seq,
    stepId: event.stepId,
    ...(event.data as Record<string, unknown>),
  };
  if (event.type === 'checkpoint.requested' || event.type === 'checkpoint.reminded') {
    const approval = data.approval as { id?: string } | undefined;
    if (approval?.id) data.approval = await approvalNotice(deps, approval.id, await starterAudience(deps, runId));
  }
  const body = JSON.stringify({ type: event.type, timestamp: event.createdAt.toISOString(), data });
  const id = `msg_${runId}_${seq}`;
  const sentAt = new Date();
  const signature = new Webhook(deps.config.auth.webhookSecret).sign(id, sentAt, body);
  return {
    url: row.webhookUrl,
    body,
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
      'webhook-signature': signature,
    },
  };
}

/**
 * Mark an event's webhook as finished (accepted, or refused for good), so the reconciler's
 * outbox sweep stops re-enqueueing it.
 */
export async function markWebhookDelivered(deps: EngineDeps, runId: string, seq: number): Promise<void> {
  await deps.database.db
    .update(runEvents)
    .set({ deliveredAt: sql`now()` })
    .where(and(eq(runEvents.runId, runId), eq(runEvents.seq, seq), isNull(runEvents.deliveredAt)));
}

/**
 * The webhook outbox sweep: re-enqueue deliveries of events that should go out and have not
 * (e.g. the enqueue after the commit failed, or Redis lost the job). A job that still exists is
 * left alone (same job id). Only events older than `graceMs` and younger than a day are swept.
 * @returns how many events were handed to the `webhooks` queue again.
 */
export async function sweepWebhookOutbox(deps: EngineDeps, graceMs = 30_000, limit = 1000): Promise<number> {
  const pending = await deps.database.db
    .select({ runId: runEvents.runId, seq: runEvents.seq })
    .from(runEvents)
    .where(
      and(
        eq(runEvents.notify, true),
        isNull(runEvents.deliveredAt),
        sql`${runEvents.createdAt} < now() - ${`${graceMs} milliseconds`}::interval`,
        sql`${runEvents.createdAt} > now() - interval '1 day'`,
      ),
    )
    .orderBy(asc(runEvents.createdAt))
    .limit(limit);
  let requeued = 0;
  for (const { runId, seq } of pending) {
    const existing = await deps.queues.get('webhooks').getJob(webhookJobId(runId, seq));
    if (existing) continue;
    await deps.queues.addWebhookDeliveries(runId, [seq]);
    requeued += 1;
  }
  return requeued;
}
