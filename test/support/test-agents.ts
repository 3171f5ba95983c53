/** Agents that exist only in tests, to drive the engine (the engine, not the agent, is under test). */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { NamedAgent } from '../../agents/index.js';
import { RetryLaterError } from '../../lib/index.js';

const SleepInput = z.object({
  label: z.string(),
  delayMs: z.number().int().nonnegative(),
  fail: z.boolean().optional(),
  /** Calls sharing a group count towards that group's concurrency figures. */
  group: z.string().optional(),
});

/** Calls per label, across the test run. */
export const sleepCalls = new Map<string, number>();
/** Per group: calls in flight now, and the most ever in flight at once. */
export const groupConcurrency = new Map<string, { now: number; max: number }>();

/**
 * `test-sleep` (api type): counts the call under `label`, waits `delayMs` (abortable), echoes.
 * With `fail: true` it throws a non-retryable error.
 */
export const sleepAgent: NamedAgent = {
  name: 'test-sleep',
  type: 'api',
  description: 'test agent: wait, then echo the label',
  async run(input, ctx) {
    const { label, delayMs, fail, group } = SleepInput.parse(input);
    sleepCalls.set(label, (sleepCalls.get(label) ?? 0) + 1);
    const g = group ? (groupConcurrency.get(group) ?? { now: 0, max: 0 }) : undefined;
    if (group && g) {
      g.now += 1;
      g.max = Math.max(g.max, g.now);
      groupConcurrency.set(group, g);
    }
    try {
      await sleep(delayMs, undefined, { signal: ctx.signal });
    } finally {
      if (g) g.now -= 1;
    }
    if (fail) throw new Error(`${label} failed on purpose`);
    return { label, finishedAtMs: Date.now(), idempotencyKey: ctx.idempotencyKey };
  },
};

const FlakyInput = z.object({ label: z.string(), failTimes: z.number().int().nonnegative() });

/** `test-flaky` (tool type): fails transiently (RetryLaterError) `failTimes` times per label, then succeeds. */
export const flakyAgent: NamedAgent = {
  name: 'test-flaky',
  type: 'tool',
  description: 'test agent: transient failures, then success',
  async run(input) {
    const { label, failTimes } = FlakyInput.parse(input);
    const calls = (sleepCalls.get(label) ?? 0) + 1;
    sleepCalls.set(label, calls);
    if (calls <= failTimes) throw new RetryLaterError(`${label}: transient failure ${calls} of ${failTimes}`);
    return { label, calls };
  },
};

/** A unique suffix so definitions and labels of one test never collide with another's. */
export function uniqueSlug(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}
