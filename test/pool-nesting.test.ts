/**
 * No transition takes a second pool connection while its transaction holds one. If one did,
 * transactions waiting on each other's run lock could hold every connection of a small pool while
 * the lock's holder waited for one more: a deadlock Postgres cannot see, which froze a worker
 * process for good (found under the Postgres fault test: a step's secrets were read on the pool
 * inside its claim). With a pool of one connection, any such read deadlocks at once, so these
 * runs — secrets read by a run's first step on the general path (claimed before it runs), by a
 * later step, and by fan-out items — complete only if every transition keeps to its own
 * connection.
 */
import { expect } from 'chai';
import { api, startStack, storeDefinition, waitForRun, type Stack } from './support/stack.js';
import { uniqueSlug } from './support/test-agents.js';

const definition = (slug: string) => `slug: ${slug}
version: 1
name: ${slug}
input: { type: object }
steps:
  - id: first
    type: function
    code: "function main(i) { return { length: i.token.length } }"
    with:
      token: \${{ secrets.POOL_NESTING_TOKEN }}
  - id: items
    type: function
    needs: [first]
    foreach: \${{ [1, 2, 3] }}
    concurrency: 3
    code: "function main(i) { return i.x * i.token.length }"
    with:
      x: \${{ item }}
      token: \${{ secrets.POOL_NESTING_TOKEN }}
  - id: last
    type: function
    needs: [first, items]
    code: "function main(i) { return { sum: i.items.reduce((a, b) => a + b, 0), length: i.token.length + i.first } }"
    with:
      items: \${{ steps.items.output }}
      first: \${{ steps.first.output.length }}
      token: \${{ secrets.POOL_NESTING_TOKEN }}
output:
  sum: \${{ steps.last.output.sum }}
  length: \${{ steps.last.output.length }}
`;

for (const claimDeferMs of [0, 20]) {
  describe(`a one-connection pool runs every transition (STEP_CLAIM_DEFER_MS=${claimDeferMs})`, function () {
    this.timeout(60_000);
    let stack: Stack;

    before(async function () {
      stack = await startStack({ config: { postgres: { poolMax: 1 }, steps: { claimDeferMs } } });
    });
    after(async function () {
      await stack?.close();
    });

    it('completes runs whose steps and items read secrets', async function () {
      expect((await api(stack, 'POST', '/v1/secrets', { name: 'POOL_NESTING_TOKEN', value: 'abcd' })).status).to.be.oneOf([200, 201]);
      const slug = uniqueSlug('pool-nesting');
      await storeDefinition(stack, definition(slug));
      const ids: string[] = [];
      for (let n = 0; n < 3; n += 1) {
        const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
        expect(res.status, JSON.stringify(res.body)).to.equal(202);
        ids.push(res.body.id);
      }
      for (const id of ids) {
        const run = await waitForRun(stack, id, 40_000);
        expect(run.status, JSON.stringify(run)).to.equal('completed');
        expect(run.output).to.deep.equal({ sum: 24, length: 8 });
      }
    });
  });
}
