/**
 * Outgoing webhooks: one message per run event, signed per Standard Webhooks
 * (https://www.standardwebhooks.com: `webhook-id`, `webhook-timestamp`, `webhook-signature:
 * v1,<base64 HMAC-SHA256>`) with `BATON_WEBHOOK_SECRET`, using the `standardwebhooks` package.
 */
import { Webhook } from 'standardwebhooks';
import { approvalNotice } from './checkpoints.js';
import type { EngineDeps } from './deps.js';
import { getEvent } from './queries.js';

/** A signed webhook message, ready to POST. */
export interface WebhookMessage {
  url: string;
  /** Raw JSON body `{type, timestamp, data}`; sign and send these exact bytes. */
  body: string;
  headers: Record<string, string>;
}

/**
 * Build the signed message for run event `seq`, or `undefined` when the run has no webhook URL
 * or the event is gone. For `checkpoint.requested` and `checkpoint.reminded`, `data.approval` carries `decideUrl`(s) with
 * freshly minted (deterministic) tokens, which never touch storage.
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
    if (approval?.id) data.approval = await approvalNotice(deps, approval.id);
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
