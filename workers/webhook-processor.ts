/**
 * Processor of the `webhooks` queue: one job per run per batch of events; it delivers whatever of
 * the run is due, in sequence order (`deliverRunWebhooks`). Endpoint failures are recorded and
 * retried by the engine's own schedule, so a job fails only on bad payloads or infrastructure
 * errors (then BullMQ retries it).
 */
import { UnrecoverableError, type Job } from 'bullmq';
import { WebhookJobData } from '../queues/index.js';
import { deliverRunWebhooks, type DeliveryReport } from '../services/engine/index.js';
import type { WorkerDeps } from './deps.js';

/** Build the processor for the `webhooks` queue. */
export function createWebhookProcessor(deps: WorkerDeps) {
  return async (job: Job): Promise<DeliveryReport> => {
    const parsed = WebhookJobData.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`job ${job.id}: invalid payload`);
    return deliverRunWebhooks(deps, deps.http, parsed.data.runId);
  };
}
