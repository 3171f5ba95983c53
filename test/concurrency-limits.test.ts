/**
 * Per-definition `concurrency: {limit, key?}` (issue 12 item 2) with real workers: at most `limit`
 * runs of a group in progress, the rest `throttled` and admitted first in first out when one
 * finishes; keys run in parallel; a throttled run can be cancelled; the reconciler admits runs a
 * missed release left waiting; the definition rules refuse a bad `concurrency:`.
 */
import { expect } from 'chai';
import { eq, sql } from 'drizzle-orm';
import { runs } from '../db/index.js';
import { parseDefinition } from '../definitions/index.js';
import { reconcileAll } from '../services/engine/index.js';
import { rootJobId } from '../queues/index.js';
import { admitThrottled } from '../services/engine/concurrency.js';
import { api, runEvents, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { groupConcurrency, sleepAgent, uniqueSlug } from './support/test-agents.js';

const agents = [sleepAgent];

/** `delayMs`: milliseconds, or a quoted expression of them (e.g. one that staggers runs by `input.n`). */
const definition = (slug: string, concurrency: string, delayMs: number | string) => `slug: ${slug}
version: 1
name: ${slug}
input: { type: object }
concurrency: ${concurrency}
steps:
  - id: work
    agent: test-sleep
    with: { label: "${slug}-\${{ input.n }}", delayMs: ${delayMs}, group: "${slug}" }
`;

async function start(stack: Stack, slug: string, input: Record<string, unknown>): Promise<{ id: string; status: string }> {
  const res = await api<{ id: string; status: string }>(stack, 'POST', '/v1/runs', { definition: slug, input });
  expect(res.status, JSON.stringify(res.body)).to.equal(202);
  return res.body;
}

/** A group of limit 1 with one run admitted and one throttled. */
async function admittedAndThrottled(stack: Stack, prefix: string, delayMs: number): Promise<{ slug: string; first: { id: string }; second: { id: string } }> {
  const slug = uniqueSlug(prefix);
  await storeDefinition(stack, definition(slug, '{ limit: 1 }', delayMs), agents);
  const first = await start(stack, slug, { n: 1 });
  const second = await start(stack, slug, { n: 2 });
  expect([first.status, second.status]).to.deep.equal(['queued', 'throttled']);
  return { slug, first, second };
}

async function statusOf(stack: Stack, id: string): Promise<string> {
  return (await api<{ status: string }>(stack, 'GET', `/v1/runs/${id}`)).body.status;
}

describe('per-definition concurrency', function () {
  this.timeout(120_000);
  let stack: Stack;

  before(async function () {
    stack = await startStack({ agents });
  });
  after(async function () {
    await stack?.close();
  });

  it('keeps at most `limit` runs in progress and admits the waiting ones in creation order', async function () {
    const slug = uniqueSlug('conc');
    // Each run sleeps 200 ms longer than the one before, so no two finish (and admit) at once:
    // an admission's event carries its finishing transaction's start time, and two concurrent
    // finishes may take the group's lock in the other order than they started.
    await storeDefinition(stack, definition(slug, '{ limit: 2 }', '"${{ 700 + input.n * 200 }}"'), agents);
    const started: Array<{ id: string; status: string }> = [];
    for (let n = 0; n < 6; n += 1) started.push(await start(stack, slug, { n }));
    expect(started.map((r) => r.status)).to.deep.equal(['queued', 'queued', 'throttled', 'throttled', 'throttled', 'throttled']);

    // The list shows the waiting runs as throttled.
    const listed = await api<{ items: Array<{ id: string }> }>(stack, 'GET', `/v1/runs?definition=${slug}&status=throttled`);
    expect(listed.status).to.equal(200);
    expect(listed.body.items.length).to.be.within(1, 4);

    // Sample Postgres while they run: never more than 2 in progress.
    let maxInProgress = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [row] = await stack.deps.database.db
          .select({ n: sql<number>`count(*)::int` })
          .from(runs)
          .where(sql`${runs.definitionSlug} = ${slug} and ${runs.status} in ('queued', 'running', 'cancelling')`);
        maxInProgress = Math.max(maxInProgress, row?.n ?? 0);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const views = [];
    for (const r of started) views.push(await waitForRun(stack, r.id, 60_000));
    sampling = false;
    await sampler;
    expect(views.map((v) => v.status)).to.deep.equal(Array(6).fill('completed'));
    expect(maxInProgress).to.equal(2);
    expect(groupConcurrency.get(slug)?.max).to.equal(2);

    // Throttled runs: `run.throttled` first, then `run.queued` when admitted, in creation order.
    const admittedAt: number[] = [];
    for (const [i, r] of started.entries()) {
      const events = await runEvents(stack, r.id);
      const types = events.map((e) => e.type);
      if (i < 2) {
        expect(types[0]).to.equal('run.queued');
        expect(types).not.to.include('run.throttled');
      } else {
        expect(types.slice(0, 2)).to.deep.equal(['run.throttled', 'run.queued']);
        const queued = events.find((e) => e.type === 'run.queued');
        admittedAt.push(new Date(queued?.createdAt ?? 0).getTime());
      }
    }
    expect(admittedAt).to.deep.equal([...admittedAt].sort((a, b) => a - b));
    // With two slots, the k-th admission needs the k-th completion (of whichever runs finished
    // first): it commits in that run's finishing transaction, so their events share its now().
    const finishedAt = await Promise.all(
      started.map(async (r) => new Date((await runEvents(stack, r.id)).find((e) => e.type === 'run.completed')?.createdAt ?? 0).getTime()),
    );
    const completions = [...finishedAt].sort((a, b) => a - b);
    admittedAt.forEach((t, k) => expect(t, `admission ${k}`).to.be.at.least(completions[k] ?? Infinity));
  });

  it('runs different `key` values in parallel, each limited on its own', async function () {
    const slug = uniqueSlug('conc-key');
    await storeDefinition(stack, definition(slug, '{ limit: 1, key: "${{ input.customer }}" }', 600), agents);
    const a1 = await start(stack, slug, { n: 1, customer: 'a' });
    const a2 = await start(stack, slug, { n: 2, customer: 'a' });
    const b1 = await start(stack, slug, { n: 3, customer: 'b' });
    const b2 = await start(stack, slug, { n: 4, customer: 'b' });
    expect([a1, a2, b1, b2].map((r) => r.status)).to.deep.equal(['queued', 'throttled', 'queued', 'throttled']);
    for (const r of [a1, a2, b1, b2]) expect((await waitForRun(stack, r.id, 60_000)).status).to.equal('completed');
    // a and b overlapped; never two of one customer.
    expect(groupConcurrency.get(slug)?.max).to.equal(2);
    const [row] = await stack.deps.database.db.select({ key: runs.concurrencyKey }).from(runs).where(eq(runs.id, b2.id));
    expect(row?.key).to.equal('b');
  });

  it('cancels a throttled run, which then never starts; the next one does', async function () {
    const slug = uniqueSlug('conc-cancel');
    await storeDefinition(stack, definition(slug, '{ limit: 1 }', 800), agents);
    const first = await start(stack, slug, { n: 1 });
    const second = await start(stack, slug, { n: 2 });
    const third = await start(stack, slug, { n: 3 });
    expect([first.status, second.status, third.status]).to.deep.equal(['queued', 'throttled', 'throttled']);
    const cancelled = await api<{ status: string }>(stack, 'POST', `/v1/runs/${second.id}/cancel`, { reason: 'not needed' });
    expect(cancelled.status, JSON.stringify(cancelled.body)).to.equal(200);
    expect(cancelled.body.status).to.equal('cancelled');
    expect((await waitForRun(stack, third.id, 60_000)).status).to.equal('completed');
    const view = await waitForRun(stack, second.id);
    expect(view.status).to.equal('cancelled');
    expect(view.steps.map((s) => s.status)).to.deep.equal(['cancelled']);
    expect((await runEvents(stack, second.id)).map((e) => e.type)).not.to.include('step.started');
  });

  it('gives the slot of a run cancelled outright to the next throttled run', async function () {
    const { first, second } = await admittedAndThrottled(stack, 'conc-cancel-running', 30_000);
    await waitFor(async () => ((await statusOf(stack, first.id)) === 'running' ? true : undefined), 20_000, 'the first run to be running');
    expect((await api(stack, 'POST', `/v1/runs/${first.id}/cancel`, {})).status).to.equal(200);
    await waitFor(async () => ((await statusOf(stack, second.id)) === 'running' ? true : undefined), 20_000, 'the second run to start');
    expect((await api(stack, 'POST', `/v1/runs/${second.id}/cancel`, {})).status).to.equal(200);
  });

  it('admits sub-runs at once (they count toward the group but never wait for a slot)', async function () {
    const child = uniqueSlug('conc-child');
    await storeDefinition(stack, definition(child, '{ limit: 1 }', 1500), agents);
    const parent = uniqueSlug('conc-parent');
    await storeDefinition(stack, `slug: ${parent}\nversion: 1\nname: ${parent}\ninput: { type: object }\nsteps:\n  - id: sub\n    type: orchestrator\n    run: { slug: ${child} }\n    with: { n: 0 }\n`, agents);
    const direct = await start(stack, child, { n: 1 });
    expect(direct.status).to.equal('queued');
    const viaParent = await start(stack, parent, {});
    // The parent's child run starts although the group is full; the group then holds 2.
    await waitFor(
      async () => {
        const rows = await stack.deps.database.db.select({ status: runs.status }).from(runs).where(eq(runs.parentRunId, viaParent.id));
        return rows[0] && rows[0].status !== 'throttled' ? true : undefined;
      },
      20_000,
      'the sub-run to be admitted',
    );
    const waiting = await start(stack, child, { n: 2 });
    expect(waiting.status).to.equal('throttled');
    for (const r of [direct, viaParent, waiting]) expect((await waitForRun(stack, r.id, 60_000)).status).to.equal('completed');
  });

  it('lets the reconciler admit a run whose release was missed', async function () {
    const { first, second } = await admittedAndThrottled(stack, 'conc-repair', 1500);
    // As if the process finishing the first run crashed after the status change, before admitting.
    await stack.deps.database.db.update(runs).set({ status: 'failed', finishedAt: new Date() }).where(eq(runs.id, first.id));
    const report = await reconcileAll(stack.deps);
    expect(report.throttledAdmitted).to.be.at.least(1);
    expect(['queued', 'running']).to.include(await statusOf(stack, second.id));
    const root = await stack.deps.queues.inspectJob('runs', rootJobId(second.id, 1));
    expect(root.state).not.to.equal('missing');
    expect((await api(stack, 'POST', `/v1/runs/${second.id}/cancel`, {})).status).to.equal(200);
  });

  it('re-creates the flow of a run admitted by a transaction whose process crashed before adding it', async function () {
    const { slug, first, second } = await admittedAndThrottled(stack, 'conc-crash', 1500);
    // The release commits (the first run finished, the second admitted), then the process dies before the flow.
    const admitted = await stack.deps.database.db.transaction(async (tx) => {
      await tx.update(runs).set({ status: 'failed', finishedAt: new Date() }).where(eq(runs.id, first.id));
      return admitThrottled(tx, stack.organizationId, slug, '');
    });
    expect(admitted.map((a) => a.runId)).to.deep.equal([second.id]);
    expect(await statusOf(stack, second.id)).to.equal('queued');
    expect((await stack.deps.queues.inspectJob('runs', rootJobId(second.id, 1))).state).to.equal('missing');
    const report = await reconcileAll(stack.deps);
    expect(report.rootsCreated).to.be.at.least(1);
    expect((await waitForRun(stack, second.id, 60_000)).status).to.equal('completed');
  });

  it('refuses a concurrency key that reads steps, and a limit below 1', function () {
    const parse = (concurrency: string) => () =>
      parseDefinition(definition('conc-bad', concurrency, 1), { file: 'bad.yaml', agents: new Map([[sleepAgent.name, sleepAgent.type]]) });
    expect(parse('{ limit: 0 }')).to.throw(/concurrency\.limit/);
    expect(parse('{ limit: 2, key: "${{ steps.work.output }}" }')).to.throw(/concurrency\.key may read only the run input/);
    expect(parse('{ limit: 2, key: "${{ input.( }}" }')).to.throw(/concurrency\.key/);
    expect(parse('{ limit: 2, key: "input.customer" }')).not.to.throw();
  });
});
