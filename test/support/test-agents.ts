/** Agents that exist only in tests, to drive the engine (the engine, not the agent, is under test). */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { NamedAgent } from '../../agents/index.js';

const SleepInput = z.object({ label: z.string(), delayMs: z.number().int().nonnegative(), fail: z.boolean().optional() });

/** Calls per label, across the test run. */
export const sleepCalls = new Map<string, number>();

/**
 * `test-sleep` (api type): counts the call under `label`, waits `delayMs` (abortable), echoes.
 * With `fail: true` it throws a non-retryable error.
 */
export const sleepAgent: NamedAgent = {
  name: 'test-sleep',
  type: 'api',
  description: 'test agent: wait, then echo the label',
  async run(input, ctx) {
    const { label, delayMs, fail } = SleepInput.parse(input);
    sleepCalls.set(label, (sleepCalls.get(label) ?? 0) + 1);
    await sleep(delayMs, undefined, { signal: ctx.signal });
    if (fail) throw new Error(`${label} failed on purpose`);
    return { label, finishedAtMs: Date.now(), idempotencyKey: ctx.idempotencyKey };
  },
};

/** A unique suffix so definitions and labels of one test never collide with another's. */
export function uniqueSlug(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}
