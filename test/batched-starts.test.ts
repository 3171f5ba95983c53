/**
 * Run starts batched into one statement (`baton_start_runs`, migration 0021): concurrent
 * `POST /v1/runs` through the real API, in-process workers, the test database.
 */
import { expect } from 'chai';
import { api, startStack, storeDefinition, waitForRun, type Stack } from './support/stack.js';
import { uniqueSlug } from './support/test-agents.js';

describe('run starts batched into one statement', function () {
  this.timeout(60_000);
  let stack: Stack;
  let slug: string;

  before(async function () {
    stack = await startStack();
    slug = uniqueSlug('starts');
    await storeDefinition(stack, `slug: ${slug}\nversion: 1\nname: ${slug}\ninput: { type: object }\nsteps:\n  - id: a\n    type: function\n    code: "function main(input) { return { n: input.n }; }"\n    with:\n      n: \${{ input.n }}\n`);
  });
  after(async function () {
    await stack?.close();
  });

  it('40 concurrent starts, each key sent twice: one run per key, both answers name it, every run completes with its input', async function () {
    const keys = Array.from({ length: 20 }, () => uniqueSlug('k'));
    const requests = keys.flatMap((key, n) => [0, 1].map(() => api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: { n } }, { 'idempotency-key': key })));
    const answers = await Promise.all(requests);
    for (const [i, key] of keys.entries()) {
      const [first, second] = [answers[2 * i], answers[2 * i + 1]];
      expect([first?.status, second?.status].sort(), `${key}: one start, one replay`).to.deep.equal([200, 202]);
      expect(first?.body.id, key).to.equal(second?.body.id);
    }
    const ids = new Set(answers.map((a) => a.body.id));
    expect(ids.size).to.equal(keys.length);
    const [row] = await stack.deps.database.sql<Array<{ n: number }>>`select count(*)::int as n from runs where idempotency_key = any(${keys})`;
    expect(row?.n).to.equal(keys.length);
    for (const [i, answer] of answers.entries()) {
      if (i % 2 === 1) continue;
      const run = await waitForRun(stack, answer.body.id);
      expect(run.status).to.equal('completed');
      expect(run.steps.find((s) => s.id === 'a')?.output).to.deep.equal({ n: Math.floor(i / 2) });
    }
  });

  it('a replay with another input in the same burst is 422 IDEMPOTENCY_KEY_REUSED and changes nothing', async function () {
    const key = uniqueSlug('k');
    const [a, b] = await Promise.all([
      api<{ id: string; error?: { code: string } }>(stack, 'POST', '/v1/runs', { definition: slug, input: { n: 1 } }, { 'idempotency-key': key }),
      api<{ id: string; error?: { code: string } }>(stack, 'POST', '/v1/runs', { definition: slug, input: { n: 2 } }, { 'idempotency-key': key }),
    ]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).to.deep.equal([202, 422]);
    const refused = a.status === 422 ? a : b;
    expect(refused.body.error?.code).to.equal('IDEMPOTENCY_KEY_REUSED');
    const [row] = await stack.deps.database.sql<Array<{ n: number }>>`select count(*)::int as n from runs where idempotency_key = ${key}`;
    expect(row?.n).to.equal(1);
  });
});
