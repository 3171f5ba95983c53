/**
 * Issue 3 engine features against real Redis and Postgres with in-process workers: conditions,
 * fan-out, retry/timeout/onError/cache policies, sub-orchestrations, compensation, manual
 * intervention, and reconciliation after the queue prefix is wiped.
 */
import { expect } from 'chai';
import { and, asc, eq } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { runs, stepAttempts, stepItems } from '../db/index.js';
import { reconcileAll } from '../services/engine/index.js';
import { runEvents as runEventsTable } from '../db/index.js';
import { startReceiver } from './support/receiver.js';
import { stepJobId } from '../queues/index.js';
import { api, runEvents, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { flakyAgent, groupConcurrency, sleepAgent, sleepCalls, uniqueSlug } from './support/test-agents.js';

const agents = [sleepAgent, flakyAgent];

describe('engine features (issue 3)', function () {
  this.timeout(60_000);
  let stack: Stack;

  before(async function () {
    stack = await startStack({ agents });
  });
  after(async function () {
    await stack?.close();
  });

  /** Store a definition (its slug is made unique) and start a run of it. */
  async function run(yaml: (slug: string) => string, input: unknown = {}): Promise<{ runId: string; slug: string }> {
    const slug = uniqueSlug('feat');
    await storeDefinition(stack, yaml(slug), agents);
    const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input });
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
    return { runId: res.body.id, slug };
  }

  const header = (slug: string) => `slug: ${slug}\nversion: 1\nname: ${slug}\ninput: { type: object }\nsteps:\n`;
  const attemptsOf = async (runId: string, stepId: string) =>
    stack.deps.database.db
      .select()
      .from(stepAttempts)
      .where(and(eq(stepAttempts.runId, runId), eq(stepAttempts.stepId, stepId)))
      .orderBy(asc(stepAttempts.attempt));

  describe('conditions (D3)', function () {
    it('skips a step whose condition is false and its dependents, unless they opt in', async function () {
      const { runId, slug } = await run(
        (s) => `${header(s)}
  - id: a
    agent: test-sleep
    with: { label: "${s}-a", delayMs: 1 }
  - id: b
    agent: test-sleep
    needs: [a]
    when: \${{ input.go = true }}
    with: { label: "${s}-b", delayMs: 1 }
  - id: c
    agent: test-sleep
    needs: [b]
    with: { label: "${s}-c", delayMs: 1 }
  - id: d
    agent: test-sleep
    needs: [b]
    ifSkipped: run
    with: { label: "${s}-d", delayMs: 1 }
output:
  d: \${{ steps.d.output.label }}
`,
        { go: false },
      );
      const view = await waitForRun(stack, runId);
      expect(view.status).to.equal('completed');
      expect(Object.fromEntries(view.steps.map((st) => [st.id, st.status]))).to.deep.equal({ a: 'completed', b: 'skipped', c: 'skipped', d: 'completed' });
      expect(view.output).to.deep.equal({ d: `${slug}-d` });
      const skipped = (await runEvents(stack, runId)).filter((e) => e.type === 'step.skipped');
      expect(skipped.map((e) => e.stepId)).to.deep.equal(['b', 'c']);
      expect(skipped[0]?.data).to.include({ reason: 'condition is false' });
    });
  });

  describe('fan-out (D4)', function () {
    const fan = (s: string, opts: { n: number; concurrency: number; delayMs: number; failAt?: number; onError?: string }) => `${header(s)}
  - id: fan
    agent: test-sleep
    foreach: \${{ input.items }}
    concurrency: ${opts.concurrency}
    ${opts.onError ? `onError: ${opts.onError}` : ''}
    with:
      label: "${s}-\${{ item }}"
      delayMs: ${opts.delayMs}
      group: "${s}"
      fail: \${{ index = ${opts.failAt ?? -1} }}
  - id: after
    agent: test-sleep
    needs: [fan]
    with: { label: "${s}-after", delayMs: 1 }
output:
  labels: \${{ steps.fan.output.label }}
`;

    it('runs one child job per item, never more than concurrency at once, gathered in input order', async function () {
      const items = Array.from({ length: 10 }, (_, i) => `x${i}`);
      const { runId, slug } = await run((s) => fan(s, { n: 10, concurrency: 3, delayMs: 400 }), { items });
      const view = await waitForRun(stack, runId);
      expect(view.status, JSON.stringify(view.error)).to.equal('completed');
      expect(view.output).to.deep.equal({ labels: items.map((i) => `${slug}-${i}`) });
      // 400 ms items overlap even on a loaded machine (at 60 ms, three were sometimes never in flight together).
      expect(groupConcurrency.get(slug)?.max).to.equal(3);
      for (const i of items) expect(sleepCalls.get(`${slug}-${i}`), i).to.equal(1);
      // A real BullMQ parent/child: the step job's children are the item jobs.
      const parent = await stack.deps.queues.get('agent-api').getJob(stepJobId(runId, 'fan', 1));
      const values = await parent!.getChildrenValues();
      expect(Object.keys(values)).to.have.length(10);
      expect(Object.keys(values).every((k) => k.includes(`${stepJobId(runId, 'fan', 1)}.i`))).to.equal(true);
      const manifest = await api<{ steps: Array<{ id: string; items: Array<{ index: number; status: string }> }> }>(stack, 'GET', `/v1/runs/${runId}/manifest`);
      const fanItems = manifest.body.steps.find((st) => st.id === 'fan')?.items ?? [];
      expect(fanItems.map((i) => i.index)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(fanItems.every((i) => i.status === 'completed')).to.equal(true);
    });

    it('one failing item fails the step (onError: fail) and stops adding items', async function () {
      const items = Array.from({ length: 8 }, (_, i) => `y${i}`);
      const { runId, slug } = await run((s) => fan(s, { n: 8, concurrency: 2, delayMs: 20, failAt: 1 }), { items });
      const view = await waitForRun(stack, runId);
      expect(view.status).to.equal('failed');
      expect((view.steps.find((s) => s.id === 'fan')?.error as { code: string }).code).to.equal('ITEM_FAILED');
      expect(view.steps.find((s) => s.id === 'after')?.status).to.equal('cancelled');
      const ran = items.filter((i) => sleepCalls.has(`${slug}-${i}`)).length;
      expect(ran).to.be.lessThan(8);
    });

    it('with onError: continue a failed item leaves null in its place', async function () {
      const items = ['p', 'q', 'r'];
      const { runId, slug } = await run((s) => fan(s, { n: 3, concurrency: 3, delayMs: 5, failAt: 1, onError: 'continue' }), { items });
      const view = await waitForRun(stack, runId);
      expect(view.status).to.equal('completed');
      expect(view.steps.find((s) => s.id === 'fan')?.output).to.have.length(3);
      expect((view.steps.find((s) => s.id === 'fan')?.output as unknown[])[1]).to.equal(null);
      expect(view.output).to.deep.equal({ labels: [`${slug}-p`, `${slug}-r`] });
    });
  });

  describe('policies (D5)', function () {
    it('retries with backoff until a flaky step succeeds', async function () {
      const { runId, slug } = await run(
        (s) => `${header(s)}
  - id: flaky
    agent: test-flaky
    retry: { attempts: 4, backoff: 50ms, maxDelay: 200ms }
    with: { label: "${s}-flaky", failTimes: 2 }
`,
      );
      const view = await waitForRun(stack, runId);
      expect(view.status).to.equal('completed');
      expect(sleepCalls.get(`${slug}-flaky`)).to.equal(3);
      expect((await attemptsOf(runId, 'flaky')).map((a) => a.status)).to.deep.equal(['failed', 'failed', 'completed']);
      const retrying = (await runEvents(stack, runId)).filter((e) => e.type === 'step.retrying');
      expect(retrying).to.have.length(2);
      expect(retrying[0]?.data.retryDelayMs).to.be.within(25, 200);
    });

    it('times out an attempt through its AbortSignal and records it as timed out', async function () {
      const { runId } = await run(
        (s) => `${header(s)}
  - id: slow
    agent: test-sleep
    timeout: 150ms
    retry: { attempts: 2, backoff: 10ms, maxDelay: 10ms }
    with: { label: "${s}-slow", delayMs: 5000 }
`,
      );
      const view = await waitForRun(stack, runId);
      expect(view.status).to.equal('failed');
      expect((view.steps[0]?.error as { code: string }).code).to.equal('TIMED_OUT');
      const attempts = await attemptsOf(runId, 'slow');
      expect(attempts.map((a) => a.status)).to.deep.equal(['timed_out', 'timed_out']);
      const took = attempts.map((a) => (a.finishedAt?.getTime() ?? 0) - a.startedAt.getTime());
      for (const ms of took) expect(ms).to.be.lessThan(2000);
    });

    it('reuses an identical agent + input within the cache TTL, recorded as a cache hit', async function () {
      const label = uniqueSlug('cached');
      const def = (s: string) => `${header(s)}
  - id: compute
    agent: test-sleep
    cache: { ttl: 1h }
    with: { delayMs: 1, label: "${label}" }
`;
      const first = await run(def);
      expect((await waitForRun(stack, first.runId)).status).to.equal('completed');
      const second = await run(def);
      const view = await waitForRun(stack, second.runId);
      expect(view.status).to.equal('completed');
      expect(sleepCalls.get(label)).to.equal(1);
      const [attempt] = await attemptsOf(second.runId, 'compute');
      expect(attempt?.cacheHit).to.equal(true);
      const completed = (await runEvents(stack, second.runId)).find((e) => e.type === 'step.completed');
      expect(completed?.data).to.include({ cacheHit: true });
    });
  });

  describe('sub-orchestrations (D6)', function () {
    async function childDefinition(delayMs: number, fail = false): Promise<string> {
      const slug = uniqueSlug('child');
      await storeDefinition(
        stack,
        `${header(slug)}
  - id: work
    agent: test-sleep
    with:
      label: \${{ input.label }}
      delayMs: ${delayMs}
      fail: ${fail}
output:
  echoed: \${{ steps.work.output.label }}
`,
        agents,
      );
      return slug;
    }

    it('runs children in parallel, links them, maps input in and output out', async function () {
      const child = await childDefinition(100);
      const { runId, slug } = await run(
        (s) => `${header(s)}
  - id: left
    type: orchestrator
    run: { slug: ${child} }
    with: { label: "${s}-left" }
  - id: right
    type: orchestrator
    run: { slug: ${child} }
    with: { label: "${s}-right" }
  - id: join
    agent: test-sleep
    needs: [left, right]
    with: { label: "\${{ steps.left.output.echoed }}+\${{ steps.right.output.echoed }}", delayMs: 1 }
output:
  joined: \${{ steps.join.output.label }}
`,
      );
      const view = await waitForRun(stack, runId);
      expect(view.status, JSON.stringify(view.error)).to.equal('completed');
      expect(view.output).to.deep.equal({ joined: `${slug}-left+${slug}-right` });
      const children = await stack.deps.database.db.select().from(runs).where(eq(runs.parentRunId, runId));
      expect(children.map((c) => c.parentStepId).sort()).to.deep.equal(['left', 'right']);
      const linked = await api<{ children: Array<{ id: string; stepId: string; status: string }> }>(stack, 'GET', `/v1/runs/${runId}`);
      expect(linked.body.children.map((c) => c.stepId).sort()).to.deep.equal(['left', 'right']);
      const childView = await api<{ parent: { runId: string; stepId: string } }>(stack, 'GET', `/v1/runs/${children[0]!.id}`);
      expect(childView.body.parent).to.deep.equal({ runId, stepId: children[0]!.parentStepId });
      const manifest = await api<{ run: { children: unknown[] } }>(stack, 'GET', `/v1/runs/${runId}/manifest`);
      expect(manifest.body.run.children).to.have.length(2);
      expect(children.every((c) => c.status === 'completed')).to.equal(true);
      // Both children overlapped in time.
      const [a, b] = children;
      expect(a!.startedAt!.getTime()).to.be.lessThan(b!.finishedAt!.getTime());
      expect(b!.startedAt!.getTime()).to.be.lessThan(a!.finishedAt!.getTime());
    });

    it('a failed child fails the step', async function () {
      const child = await childDefinition(1, true);
      const { runId } = await run(
        (s) => `${header(s)}
  - id: sub
    type: orchestrator
    run: { slug: ${child} }
    with: { label: "${s}-sub" }
`,
      );
      const view = await waitForRun(stack, runId);
      expect(view.status).to.equal('failed');
      expect((view.steps[0]?.error as { code: string }).code).to.equal('CHILD_RUN_FAILED');
    });

    it('cancelling the parent cancels its children', async function () {
      const child = await childDefinition(20_000);
      const { runId } = await run(
        (s) => `${header(s)}
  - id: sub
    type: orchestrator
    run: { slug: ${child} }
    with: { label: "${s}-sub" }
`,
      );
      const childRun = await waitFor(
        async () => (await stack.deps.database.db.select().from(runs).where(eq(runs.parentRunId, runId)))[0],
        10_000,
        'child run',
      );
      await waitFor(async () => ((await api<{ status: string }>(stack, 'GET', `/v1/runs/${childRun.id}`)).body.status === 'running' ? true : undefined), 10_000, 'child running');
      const cancelled = await api<{ status: string }>(stack, 'POST', `/v1/runs/${runId}/cancel`, { reason: 'changed my mind' });
      expect(cancelled.status).to.equal(200);
      expect((await waitForRun(stack, runId)).status).to.equal('cancelled');
      const childView = await waitForRun(stack, childRun.id);
      expect(childView.status).to.equal('cancelled');
      expect(childView.error?.message).to.contain('parent run');
    });
  });

  describe('compensation (D9)', function () {
    it('runs the compensations of completed steps in reverse completion order when aborted', async function () {
      const { runId, slug } = await run(
        (s) => `${header(s)}
  - id: reserve
    agent: test-sleep
    compensate: release
    with: { label: "${s}-reserve", delayMs: 1 }
  - id: charge
    agent: test-sleep
    needs: [reserve]
    compensate: refund
    with: { label: "${s}-charge", delayMs: 1 }
  - id: review
    type: checkpoint
    needs: [charge]
    prompt: ok?
  - id: ship
    agent: test-sleep
    needs: [review]
    with: { label: "${s}-ship", delayMs: 1 }
  - id: release
    agent: test-sleep
    with: { label: "${s}-release", delayMs: 1 }
  - id: refund
    agent: test-sleep
    with: { label: "${s}-refund", delayMs: 1 }
`,
      );
      const approval = await waitFor(
        async () => (await api<{ items: Array<{ id: string; runId: string }> }>(stack, 'GET', '/v1/approvals?status=pending&limit=200')).body.items.find((a) => a.runId === runId),
        15_000,
        'approval',
      );
      expect((await api(stack, 'POST', `/v1/approvals/${approval.id}/decision`, { decision: 'abort', comment: 'no' })).status).to.equal(200);
      const view = await waitForRun(stack, runId);
      expect(view.status).to.equal('cancelled');
      const status = Object.fromEntries(view.steps.map((s) => [s.id, s.status]));
      expect(status).to.include({ reserve: 'completed', charge: 'completed', review: 'failed', ship: 'cancelled', release: 'completed', refund: 'completed' });
      expect(sleepCalls.get(`${slug}-ship`)).to.equal(undefined);
      const started = (await runEvents(stack, runId)).filter((e) => e.type === 'step.started').map((e) => e.stepId);
      expect(started.slice(-2)).to.deep.equal(['refund', 'release']);
    });
  });

  describe('manual intervention (R5)', function () {
    it('retries a failed step with edited input, keeping the other outputs', async function () {
      const { runId, slug } = await run(
        (s) => `${header(s)}
  - id: a
    agent: test-sleep
    with: { label: "${s}-a", delayMs: 1 }
  - id: b
    agent: test-sleep
    needs: [a]
    with: { label: "${s}-b", delayMs: 1, fail: true }
  - id: c
    agent: test-sleep
    needs: [b]
    with: { label: "\${{ steps.b.output.label }}-c", delayMs: 1 }
output:
  c: \${{ steps.c.output.label }}
`,
      );
      expect((await waitForRun(stack, runId)).status).to.equal('failed');
      const retried = await api(stack, 'POST', `/v1/runs/${runId}/steps/b/retry`, { input: { label: `${slug}-b2`, delayMs: 1 } });
      expect(retried.status).to.equal(202);
      const view = await waitForRun(stack, runId);
      expect(view.status).to.equal('completed');
      expect(view.output).to.deep.equal({ c: `${slug}-b2-c` });
      expect(sleepCalls.get(`${slug}-a`)).to.equal(1);
      expect(view.steps.find((s) => s.id === 'a')?.attempts).to.equal(1);
      const types = (await runEvents(stack, runId)).map((e) => e.type);
      expect(types).to.include('run.resumed');
      expect(types.filter((t) => t === 'run.failed')).to.have.length(1);
      expect(types.at(-1)).to.equal('run.completed');
      // The run reopened under a new root job.
      expect(await (await stack.deps.queues.get('runs').getJob(`${runId}.r2`))?.getState()).to.equal('completed');
    });

    it('resumes a failed run from its failed step; skip records an output; 409 when the state does not allow it', async function () {
      const { runId, slug } = await run(
        (s) => `${header(s)}
  - id: flaky
    agent: test-flaky
    with: { label: "${s}-flaky", failTimes: 1 }
  - id: opt
    agent: test-sleep
    needs: [flaky]
    with: { label: "${s}-opt", delayMs: 1, fail: true }
  - id: last
    agent: test-sleep
    needs: [opt]
    with: { label: "\${{ steps.opt.output.label }}", delayMs: 1 }
output:
  last: \${{ steps.last.output.label }}
`,
      );
      expect((await waitForRun(stack, runId)).status).to.equal('failed');
      expect((await api(stack, 'POST', `/v1/runs/${runId}/cancel`, {})).status).to.equal(409);
      expect((await api(stack, 'POST', `/v1/runs/${runId}/steps/last/retry`, {})).status).to.equal(409);
      expect((await api(stack, 'POST', `/v1/runs/${runId}/resume`)).status).to.equal(202);
      const afterResume = await waitForRun(stack, runId);
      expect(afterResume.status).to.equal('failed'); // flaky now succeeds, opt still fails
      expect(afterResume.steps.find((s) => s.id === 'flaky')?.status).to.equal('completed');
      expect(sleepCalls.get(`${slug}-flaky`)).to.equal(2);
      const skipped = await api(stack, 'POST', `/v1/runs/${runId}/steps/opt/skip`, { output: { label: 'given' } });
      expect(skipped.status).to.equal(200);
      const view = await waitForRun(stack, runId);
      expect(view.status).to.equal('completed');
      expect(view.output).to.deep.equal({ last: 'given' });
      expect((await runEvents(stack, runId)).find((e) => e.type === 'step.skipped')?.data).to.include({ manual: true });
      expect((await api(stack, 'POST', `/v1/runs/${runId}/resume`)).status).to.equal(409);
      expect((await api(stack, 'POST', `/v1/runs/${runId}/steps/opt/skip`, {})).status).to.equal(409);
    });

    it('cancels while a fan-out is half done: waiting items removed, running ones aborted, nothing left behind', async function () {
      const items = Array.from({ length: 6 }, (_, i) => `z${i}`);
      const { runId, slug } = await run(
        (s) => `${header(s)}
  - id: fan
    agent: test-sleep
    foreach: \${{ input.items }}
    concurrency: 2
    with: { label: "${s}-\${{ item }}", delayMs: 400 }
`,
        { items },
      );
      await waitFor(
        async () => {
          const rows = await stack.deps.database.db.select().from(stepItems).where(eq(stepItems.runId, runId));
          return rows.filter((r) => r.status === 'completed').length >= 2 ? true : undefined;
        },
        15_000,
        'two items done',
      );
      const res = await api<{ status: string }>(stack, 'POST', `/v1/runs/${runId}/cancel`, { reason: 'enough' });
      expect(res.status).to.equal(200);
      const view = await waitForRun(stack, runId);
      expect(view.status).to.equal('cancelled');
      const rows = await stack.deps.database.db.select().from(stepItems).where(eq(stepItems.runId, runId));
      expect(rows.filter((r) => r.status === 'completed').length).to.be.within(2, 4);
      expect(rows.filter((r) => r.status === 'cancelled').length).to.be.at.least(2);
      const ran = items.filter((i) => sleepCalls.has(`${slug}-${i}`)).length;
      expect(ran).to.be.lessThan(6);
      // No job of this run is left waiting or active.
      await waitFor(
        async () => {
          const queue = stack.deps.queues.get('agent-api');
          const jobs = await queue.getJobs(['waiting', 'active', 'delayed', 'waiting-children']);
          return jobs.some((j) => (j.data as { runId?: string }).runId === runId) ? undefined : true;
        },
        10_000,
        'no live jobs',
      );
    });
  });

  describe('durability (R4)', function () {
    it('reconciles after every Redis key of the prefix is wiped: parked checkpoints and running steps resume', async function () {
      const parked = await run(
        (s) => `${header(s)}
  - id: review
    type: checkpoint
    prompt: ok?
  - id: after
    agent: test-sleep
    needs: [review]
    with: { label: "${s}-after", delayMs: 1 }
`,
      );
      const slow = await run(
        (s) => `${header(s)}
  - id: slow
    agent: test-sleep
    with: { label: "${s}-slow", delayMs: 1500 }
`,
      );
      const approval = await waitFor(
        async () => (await api<{ items: Array<{ id: string; runId: string }> }>(stack, 'GET', '/v1/approvals?status=pending&limit=200')).body.items.find((a) => a.runId === parked.runId),
        15_000,
        'approval',
      );
      await waitFor(async () => (sleepCalls.has(`${slow.slug}-slow`) ? true : undefined), 10_000, 'slow step started');

      // Redis loses everything of this deployment.
      const redis = new Redis(stack.config.redis.url);
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${stack.config.redis.prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
      redis.disconnect();
      expect(await stack.deps.queues.get('runs').getJob(parked.runId)).to.equal(undefined);

      const report = await reconcileAll(stack.deps);
      expect(report.rootsCreated).to.be.at.least(2);
      expect((await api(stack, 'POST', `/v1/approvals/${approval.id}/decision`, { decision: 'continue' })).status).to.equal(200);
      expect((await waitForRun(stack, parked.runId, 30_000)).status).to.equal('completed');
      const slowView = await waitForRun(stack, slow.runId, 30_000);
      expect(slowView.status).to.equal('completed');
      // The in-flight attempt may finish on its own or be re-run; it is recorded completed once.
      const completed = (await runEvents(stack, slow.runId)).filter((e) => e.type === 'step.completed');
      expect(completed).to.have.length(1);
    });
  });

  describe('webhook outbox', function () {
    it('delivers every event of a run even after the webhooks queue lost its jobs', async function () {
      const receiver = await startReceiver(stack.config.auth.webhookSecret);
      try {
        receiver.failWebhooks = true;
        const slug = uniqueSlug('outbox');
        await storeDefinition(stack, `${header(slug)}
  - id: a
    agent: test-sleep
    with: { label: "${slug}-a", delayMs: 1 }
`, agents);
        const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {}, webhookUrl: `${receiver.url}/webhooks` });
        const runId = res.body.id;
        expect((await waitForRun(stack, runId)).status).to.equal('completed');
        const events = await runEvents(stack, runId);
        // Every delivery is failing and waiting to retry; then Redis loses them all.
        await stack.deps.queues.get('webhooks').obliterate({ force: true });
        receiver.failWebhooks = false;
        const report = await reconcileAll(stack.deps, { webhookGraceMs: 0 });
        expect(report.webhooksRequeued).to.be.at.least(events.length);
        await waitFor(
          async () => (receiver.webhooks.filter((w) => w.data.runId === runId).length >= events.length ? true : undefined),
          15_000,
          'all webhooks delivered',
        );
        const seqs = receiver.webhooks.filter((w) => w.data.runId === runId).map((w) => w.data.seq as number);
        expect([...new Set(seqs)].sort((x, y) => x - y)).to.deep.equal(events.map((e) => e.seq));
        await waitFor(
          async () => {
            const rows = await stack.deps.database.db.select().from(runEventsTable).where(eq(runEventsTable.runId, runId));
            return rows.every((r) => r.deliveredAt !== null) ? true : undefined;
          },
          10_000,
          'outbox closed',
        );
      } finally {
        await receiver.close();
      }
    });
  });
});
