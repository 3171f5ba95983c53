/**
 * Handler of the `webhooks` queue: one job per run per batch of events; it delivers whatever of
 * the run is due, in sequence order (`deliverRunWebhooks`). Endpoint failures are recorded and
 * retried by the engine's own schedule, so a job fails only on bad payloads or infrastructure
 * errors (then BullMQ retries it).
 */
import { countWebhookDelivery } from '../lib/index.js';
import type { JobHandler } from '../queues/index.js';
import { deliverRunWebhooks } from '../services/engine/index.js';
import type { WorkerDeps } from './deps.js';
import { ack } from './failure.js';

/** Handle a webhook delivery job. */
export function createWebhookHandler(deps: WorkerDeps): JobHandler<'webhook'> {
  return async (job) => {
    const report = await deliverRunWebhooks(deps, deps.http, job.data.runId);
    countWebhookDelivery('delivered', report.delivered);
    countWebhookDelivery('failed', report.failed);
    countWebhookDelivery('retrying', report.retrying);
    return ack({ ...report });
  };
}
