import { expect } from 'chai';
/**
 * Test helper: an {@link AgentContext} with harmless defaults. Not used by production code.
 */
import type { Sql } from 'postgres';
import { silentLogger } from '../lib/index.js';
import { createHash, randomUUID } from 'node:crypto';
import type { AgentContext, AssetMeta, DeliverableInput } from './types.js';

/** An asset kept by {@link testContext}'s in-memory `assets.saveBuffer`. */
export interface SavedAsset extends AssetMeta {
  id: string;
  data: Uint8Array;
  sha256: string;
}

/** What a {@link testContext} recorded: saved assets, created deliverables, progress reports. */
export interface TestRecorder {
  assets: SavedAsset[];
  deliverables: (DeliverableInput & { id: string })[];
  progress: { fraction: number; message: string | undefined }[];
}

function unavailable(what: string): () => never {
  return () => {
    throw new Error(`test context: ${what} is not available here (pass an override)`);
  };
}

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
 * LLM settings without `baseUrl` (local provider), model `test-model`, `timeoutMs` 5000; no env or
 * secrets; `http`, `functions` and `moduleCode` throw; assets, deliverables and progress are
 * recorded in memory (in `recorder` when given).
 * @param overrides - fields replacing the defaults.
 * @param recorder - where assets, deliverables and progress go (default: a fresh one).
 */
export function testContext(overrides: Partial<AgentContext> = {}, recorder?: TestRecorder): AgentContext {
  const rec: TestRecorder = recorder ?? { assets: [], deliverables: [], progress: [] };
  return {
    runId: 'run-test',
    stepId: 'step-test',
    attempt: 1,
    idempotencyKey: 'run-test.step-test.1',
    signal: new AbortController().signal,
    logger: silentLogger(),
    sql: throwingSql(),
    llm: { baseUrl: undefined, apiKey: undefined, model: 'test-model', timeoutMs: 5000 },
    run: { id: 'run-test', definition: { slug: 'test', version: 1 } },
    env: {},
    secrets: {},
    http: unavailable('http'),
    assets: {
      saveBuffer(data, meta) {
        const sha256 = createHash('sha256').update(data).digest('hex');
        const id = randomUUID();
        rec.assets.push({ id, data, sha256, ...meta });
        return Promise.resolve({ id, bytes: data.byteLength, sha256 });
      },
    },
    deliverables: {
      create(deliverable) {
        const id = randomUUID();
        rec.deliverables.push({ id, ...deliverable });
        return Promise.resolve({ id });
      },
    },
    progress(fraction, message) {
      rec.progress.push({ fraction, message });
      return Promise.resolve();
    },
    functions: { run: unavailable('functions.run') },
    moduleCode: unavailable('moduleCode'),
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
