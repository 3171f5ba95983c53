/**
 * Handler of the `webhooks` queue: POST one signed event to the run's webhook URL, through the
 * outbound policy (a URL resolving to a denied address is refused for good).
 */
import { OutboundDeniedError, ValidationError } from '../lib/index.js';
import type { Directive, JobHandler } from '../queues/index.js';
import { markWebhookDelivered, webhookMessage } from '../services/engine/index.js';
import type { WorkerDeps } from './deps.js';
import { ack } from './failure.js';

/** Per-delivery timeout, in milliseconds. */
const DELIVERY_TIMEOUT_MS = 10_000;

/** Handle a webhook delivery (retried with the job's exponential backoff). */
export function createWebhookHandler(deps: WorkerDeps): JobHandler<'webhook'> {
  return async (job) => {
    const { runId, seq } = job.data;
    const message = await webhookMessage(deps, runId, seq);
    if (!message) return ack({ skipped: 'no webhook URL' });
    let failure: Directive;
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
        return ack({ status: response.status });
      }
      const permanent = response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429;
      const reason = `webhook endpoint answered ${response.status}`;
      failure = { kind: permanent ? 'fail' : 'retry', reason };
    } catch (err) {
      const reason = `webhook delivery failed: ${err instanceof Error ? err.message : String(err)}`;
      // A destination the outbound policy refuses, or a malformed URL, never succeeds; any other
      // failure is the endpoint's, never ours (not an infrastructure error), so attempts count.
      const permanent = err instanceof OutboundDeniedError || err instanceof ValidationError;
      failure = { kind: permanent ? 'fail' : 'retry', reason };
    }
    // Refused for good, or out of attempts: close it in the outbox so the sweep leaves it.
    if (failure.kind === 'fail' || job.attemptsMade + 1 >= job.attempts) await markWebhookDelivered(deps, runId, seq);
    return failure;
  };
}
