import { expect } from 'chai';
/**
 * Test helper: an {@link AgentContext} with harmless defaults. Not used by production code.
 */
import type { Sql } from 'postgres';
import { silentLogger } from '../lib/index.js';
import type { AgentContext } from './types.js';

/**
 * A `sql` stand-in that throws on any use, for agents that must not touch the database.
 * @throws Error on any property access or call.
 */
export function throwingSql(): Sql {
  const fail = (): never => {
    throw new Error('test context: the database must not be used here');
  };
  const target = function unusableSql(): void {};
  return new Proxy(target, { get: fail, apply: fail, construct: fail }) as unknown as Sql;
}

/**
 * Build an agent context for tests.
 * Defaults: run `run-test`, step `step-test`, attempt 1, idempotency key `run-test.step-test.1`,
 * a fresh never-aborted signal, a silent pino logger, a throwing `sql` ({@link throwingSql}) and
 * LLM settings without `baseUrl` (local provider), model `test-model`, `timeoutMs` 5000.
 * @param overrides - fields replacing the defaults.
 */
export function testContext(overrides: Partial<AgentContext> = {}): AgentContext {
  return {
    runId: 'run-test',
    stepId: 'step-test',
    attempt: 1,
    idempotencyKey: 'run-test.step-test.1',
    signal: new AbortController().signal,
    logger: silentLogger(),
    sql: throwingSql(),
    llm: { baseUrl: undefined, apiKey: undefined, model: 'test-model', timeoutMs: 5000 },
    ...overrides,
  };
}

/** The error a promise rejects with; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  return expect.fail('expected a rejection');
}
