/**
 * Processor of the `webhooks` queue: POST one signed event to the run's webhook URL, through the
 * outbound policy (a URL resolving to a denied address is refused for good).
 */
import { UnrecoverableError, type Job } from 'bullmq';
import { OutboundDeniedError, RetryLaterError, ValidationError } from '../lib/index.js';
import { WebhookJobData } from '../queues/index.js';
import { markWebhookDelivered, webhookMessage } from '../services/engine/index.js';
import type { WorkerDeps } from './deps.js';

/** Per-delivery timeout, in milliseconds. */
const DELIVERY_TIMEOUT_MS = 10_000;

/** Build the processor for the `webhooks` queue (retried with exponential backoff). */
export function createWebhookProcessor(deps: WorkerDeps) {
  return async (job: Job): Promise<Record<string, unknown>> => {
    const parsed = WebhookJobData.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`job ${job.id}: invalid payload`);
    const { runId, seq } = parsed.data;
    const message = await webhookMessage(deps, runId, seq);
    if (!message) return { skipped: 'no webhook URL' };
    let failure: Error;
    try {
      const response = await deps.http({
        method: 'POST',
        url: message.url,
        headers: message.headers,
        body: message.body,
        timeoutMs: DELIVERY_TIMEOUT_MS,
        responseType: 'text',
        maxBodyBytes: 64 * 1024,
        maxRedirects: 0,
      });
      if (response.status >= 200 && response.status < 300) {
        await markWebhookDelivered(deps, runId, seq);
        return { status: response.status };
      }
      const permanent = response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429;
      const reason = `webhook endpoint answered ${response.status}`;
      failure = permanent ? new UnrecoverableError(reason) : new Error(reason);
    } catch (err) {
      const reason = `webhook delivery failed: ${err instanceof Error ? err.message : String(err)}`;
      // A destination the outbound policy refuses, or a malformed URL, never succeeds; any other
      // failure is the endpoint's, never ours (not an infrastructure error), so attempts count.
      const permanent = err instanceof OutboundDeniedError || err instanceof ValidationError;
      failure = permanent ? new UnrecoverableError(reason) : new RetryLaterError(reason, { cause: err });
    }
    // Refused for good, or out of attempts: close it in the outbox so the sweep leaves it.
    if (failure instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) {
      await markWebhookDelivered(deps, runId, seq);
    }
    throw failure;
  };
}
