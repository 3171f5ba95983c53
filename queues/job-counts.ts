/** Job counts of every queue, for the `baton_queue_jobs` gauge. */
import type { Queues } from './queues.js';

/** BullMQ job states counted (`getJobCounts`). */
export const COUNTED_JOB_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed'] as const;

/** One queue's jobs in one state. */
export interface QueueJobCount {
  queue: string;
  state: (typeof COUNTED_JOB_STATES)[number];
  count: number;
}

/**
 * Jobs per queue and state, read from Redis (one `getJobCounts` per queue, in parallel).
 * @throws the Redis error when Redis does not answer.
 */
export async function queueJobCounts(queues: Queues): Promise<QueueJobCount[]> {
  const perQueue = await Promise.all(
    queues.all().map(async (queue) => {
      const counts = await queue.getJobCounts(...COUNTED_JOB_STATES);
      return COUNTED_JOB_STATES.map((state) => ({ queue: queue.name, state, count: counts[state] ?? 0 }));
    }),
  );
  return perQueue.flat();
}
