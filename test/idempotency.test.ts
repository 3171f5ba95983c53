/**
 * Idempotent run starts (issue 12 item 9): the same `Idempotency-Key` (header or body) with the
 * same request returns the same run; with another definition, version, input or webhook URL it
 * is 422 `IDEMPOTENCY_KEY_REUSED` and nothing is created; concurrent requests with one key start
 * one run.
 */
import { expect } from 'chai';
import { and, count, eq } from 'drizzle-orm';
import { runs } from '../db/index.js';
import { api, startStack, storeDefinition, type Stack } from './support/stack.js';
import { sleepAgent, uniqueSlug } from './support/test-agents.js';

interface Started {
  id: string;
  status: string;
}
interface ErrorBody {
  error: { code: string; message: string; field?: string; details?: { runId?: string } };
}

describe('idempotent run starts', function () {
  this.timeout(60_000);
  let stack: Stack;
  let slug: string;
  let other: string;

  before(async function () {
    stack = await startStack({ workers: false });
    slug = uniqueSlug('idem');
    other = uniqueSlug('idem-other');
    for (const s of [slug, other]) {
      await storeDefinition(stack, `
slug: ${s}
version: 1
name: ${s}
input: { type: object }
steps:
  - id: a
    agent: test-sleep
    with: { label: "${s}", delayMs: 1 }
`, [sleepAgent]);
    }
  });
  after(async function () {
    await stack?.close();
  });

  async function runsWithKey(key: string): Promise<number> {
    const [row] = await stack.deps.database.db
      .select({ n: count() })
      .from(runs)
      .where(and(eq(runs.organizationId, stack.organizationId), eq(runs.idempotencyKey, key)));
    return row?.n ?? 0;
  }

  it('returns the same run for the same request, whatever the key order of its input', async function () {
    const key = uniqueSlug('key');
    const first = await api<Started>(stack, 'POST', '/v1/runs', { definition: slug, input: { a: 1, b: { c: [1, 2] } } }, { 'idempotency-key': key });
    expect(first.status).to.equal(202);
    const again = await api<Started>(stack, 'POST', '/v1/runs', { input: { b: { c: [1, 2] }, a: 1 }, definition: slug }, { 'idempotency-key': key });
    expect(again.status).to.equal(200);
    expect(again.body.id).to.equal(first.body.id);
    // The body's idempotencyKey is the same key as the header.
    const viaBody = await api<Started>(stack, 'POST', '/v1/runs', { definition: slug, input: { a: 1, b: { c: [1, 2] } }, idempotencyKey: key });
    expect(viaBody.body.id).to.equal(first.body.id);
    expect(await runsWithKey(key)).to.equal(1);
  });

  it('refuses the key with another input, definition, version or webhook URL: 422 IDEMPOTENCY_KEY_REUSED', async function () {
    const key = uniqueSlug('key');
    const first = await api<Started>(stack, 'POST', '/v1/runs', { definition: slug, input: { n: 1 } }, { 'idempotency-key': key });
    expect(first.status).to.equal(202);
    for (const body of [
      { definition: slug, input: { n: 2 } },
      { definition: slug, input: {} },
      { definition: other, input: { n: 1 } },
      { definition: slug, version: 1, input: { n: 1 } },
      { definition: slug, input: { n: 1 }, webhookUrl: 'http://127.0.0.1:9/hook' },
    ]) {
      const reused = await api<ErrorBody>(stack, 'POST', '/v1/runs', body, { 'idempotency-key': key });
      expect(reused.status, JSON.stringify(body)).to.equal(422);
      expect(reused.body.error.code).to.equal('IDEMPOTENCY_KEY_REUSED');
      expect(reused.body.error.field).to.equal('idempotencyKey');
      expect(reused.body.error.details?.runId).to.equal(first.body.id);
    }
    expect(await runsWithKey(key)).to.equal(1);
    const same = await api<Started>(stack, 'POST', '/v1/runs', { definition: slug, input: { n: 1 } }, { 'idempotency-key': key });
    expect(same.status).to.equal(200);
    expect(same.body.id).to.equal(first.body.id);
  });

  it('starts one run for concurrent identical requests with one key', async function () {
    const key = uniqueSlug('key');
    const answers = await Promise.all(
      Array.from({ length: 12 }, () => api<Started>(stack, 'POST', '/v1/runs', { definition: slug, input: { same: true } }, { 'idempotency-key': key })),
    );
    expect(answers.map((a) => a.status).filter((s) => s === 202)).to.have.length(1);
    expect(answers.every((a) => a.status === 202 || a.status === 200)).to.equal(true);
    expect(new Set(answers.map((a) => a.body.id)).size).to.equal(1);
    expect(await runsWithKey(key)).to.equal(1);
  });

  it('lets exactly one of two different concurrent requests with one key win', async function () {
    const key = uniqueSlug('key');
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => api<Started & ErrorBody>(stack, 'POST', '/v1/runs', { definition: slug, input: { variant: i % 2 } }, { 'idempotency-key': key })),
    );
    const won = answers.filter((a) => a.status === 202 || a.status === 200);
    const refused = answers.filter((a) => a.status === 422);
    expect(won.length + refused.length).to.equal(10);
    expect(new Set(won.map((a) => a.body.id)).size).to.equal(1);
    expect(refused.every((a) => a.body.error.code === 'IDEMPOTENCY_KEY_REUSED')).to.equal(true);
    expect(won.length).to.equal(5);
    expect(await runsWithKey(key)).to.equal(1);
  });

  it('refuses a key longer than 255 characters by name (header and body)', async function () {
    const header = await api<ErrorBody>(stack, 'POST', '/v1/runs', { definition: slug, input: {} }, { 'idempotency-key': 'k'.repeat(256) });
    expect(header.status).to.equal(400);
    expect(header.body.error.field).to.equal('Idempotency-Key');
    const body = await api<ErrorBody>(stack, 'POST', '/v1/runs', { definition: slug, input: {}, idempotencyKey: 'k'.repeat(256) });
    expect(body.status).to.equal(400);
    expect(body.body.error.field).to.equal('idempotencyKey');
    const longest = await api<Started>(stack, 'POST', '/v1/runs', { definition: slug, input: {} }, { 'idempotency-key': uniqueSlug('longest').padEnd(255, 'k') });
    expect(longest.status).to.equal(202);
  });
});
