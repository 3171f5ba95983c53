/**
 * The reconciler repairs every state a run can be stuck in (issue 13, services/engine/reconcile.ts
 * states the invariant). Each test breaks Redis on purpose the way a crash or a partial loss
 * leaves it, checks that the run is stuck that way, reconciles, and asserts the run completes.
 */
import { expect } from 'chai';
import { and, eq } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { AGENT_TYPES, type NamedAgent } from '../agents/index.js';
import { runs, stepItems } from '../db/index.js';
import { createRedis, itemJobId, rootJobId, stepJobId } from '../queues/index.js';
import { advanceSubrun, beginStep, reconcileRun } from '../services/engine/index.js';
import { startWorkers, type WorkerPool } from '../workers/start-workers.js';
import { testEnvironment } from './support/environment.js';
import { api, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { sleepAgent, sleepCalls, uniqueSlug } from './support/test-agents.js';

/** Calls per label of `test-infra-flaky`. */
const infraCalls = new Map<string, number>();

/**
 * `test-infra-flaky` (api type): the first call per label throws what postgres.js throws when
 * the server closes the connection (a raw driver error, not an agent decision); then succeeds.
 */
const infraFlakyAgent: NamedAgent = {
  name: 'test-infra-flaky',
  type: 'api',
  description: 'test agent: one infrastructure error, then success',
  async run(input) {
    const label = String((input as { label?: unknown }).label);
    const calls = (infraCalls.get(label) ?? 0) + 1;
    infraCalls.set(label, calls);
    if (calls === 1) throw Object.assign(new Error('write CONNECTION_CLOSED 127.0.0.1:5432'), { code: 'CONNECTION_CLOSED' });
    return { label, calls };
  },
};

const agents = [sleepAgent, infraFlakyAgent];

describe('reconciler repairs (issue 13)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let redis: Redis;
  let pool: WorkerPool | undefined;
  let workerConnection: Redis | undefined;
  let prefix: string;

  before(async function () {
    const env = await testEnvironment();
    // Workers are started by each test once it has broken Redis; no periodic reconcile meanwhile.
    stack = await startStack({ workers: false, agents, config: { worker: { ...env.config.worker, reconcileIntervalMs: 3_600_000 } } });
    redis = new Redis(stack.config.redis.url);
    prefix = stack.config.redis.prefix;
  });
  afterEach(async function () {
    await pool?.close();
    workerConnection?.disconnect();
    pool = undefined;
    workerConnection = undefined;
  });
  after(async function () {
    redis?.disconnect();
    await stack?.close();
  });

  function startPool(): void {
    workerConnection = createRedis(stack.config.redis.url, 'worker');
    pool = startWorkers(stack.deps, workerConnection, AGENT_TYPES);
  }

  async function start(yaml: (slug: string) => string, input: unknown = {}): Promise<{ runId: string; slug: string }> {
    const slug = uniqueSlug('rep');
    await storeDefinition(stack, yaml(slug), agents);
    const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input });
    expect(res.status).to.equal(202);
    return { runId: res.body.id, slug };
  }

  const header = (slug: string) => `slug: ${slug}\nversion: 1\nname: ${slug}\ninput: { type: object }\nsteps:\n`;
  const twoSteps = (s: string) => `${header(s)}
  - id: a
    agent: test-sleep
    with: { label: "${s}-a", delayMs: 1 }
  - id: b
    agent: test-sleep
    needs: [a]
    with: { label: "${s}-b", delayMs: 1 }
`;
  const stateOf = async (queue: 'runs' | 'agent-api' | 'agent-orchestrator', id: string) => (await stack.deps.queues.inspectJob(queue, id)).state;

  it('a root waiting on a child job that is in no queue state: the job is replaced and the run completes', async function () {
    const { runId, slug } = await start(twoSteps);
    const jobId = stepJobId(runId, 'a', 1);
    expect(await stateOf('agent-api', jobId)).to.equal('waiting');
    // A partial loss: the job's hash survives, its entry in the wait list does not.
    expect(await redis.lrem(`${prefix}:agent-api:wait`, 0, jobId)).to.equal(1);
    expect(await stateOf('agent-api', jobId)).to.equal('unknown');
    expect(await stateOf('runs', runId)).to.equal('waiting-children');

    const report = await reconcileRun(stack.deps, runId);
    expect(report.deadJobsRemoved).to.be.at.least(1);
    expect(report.jobsAdded).to.be.at.least(1);
    startPool();
    expect((await waitForRun(stack, runId)).status).to.equal('completed');
    expect(sleepCalls.get(`${slug}-a`)).to.equal(1);
  });

  it('a child job without its data: replaced from Postgres, never failed as an invalid payload', async function () {
    const { runId, slug } = await start(twoSteps);
    const jobId = stepJobId(runId, 'a', 1);
    // A late write re-created the hash after its keys were deleted: no name, no data.
    await redis.hdel(`${prefix}:agent-api:${jobId}`, 'data', 'name');
    expect((await stack.deps.queues.inspectJob('agent-api', jobId)).data).to.equal(undefined);

    const report = await reconcileRun(stack.deps, runId);
    expect(report.deadJobsRemoved).to.equal(1);
    const replaced = await stack.deps.queues.get('agent-api').getJob(jobId);
    expect(replaced?.data).to.include({ runId, stepId: 'a', generation: 1 });
    startPool();
    const view = await waitForRun(stack, runId);
    expect(view.status, JSON.stringify(view.error)).to.equal('completed');
    expect(sleepCalls.get(`${slug}-b`)).to.equal(1);
  });

  it('a root waiting for nothing while every step is settled: woken, and the run finalizes', async function () {
    const { runId } = await start(
      (s) => `${header(s)}
  - id: a
    agent: test-sleep
    with: { label: "${s}-a", delayMs: 1 }
`,
    );
    startPool();
    await waitFor(async () => ((await stateOf('agent-api', stepJobId(runId, 'a', 1))) === 'completed' ? true : undefined), 10_000, 'step a');
    const view = await waitForRun(stack, runId);
    expect(view.status).to.equal('completed');
    // Re-open the run in Postgres and park its (completed) root's successor in waiting-children
    // with an empty dependency set (bullmq#3235): nothing would ever move it.
    await stack.deps.database.db.update(runs).set({ status: 'running', finishedAt: null, rootGeneration: 2 }).where(eq(runs.id, runId));
    const rootId = rootJobId(runId, 2);
    await stack.deps.queues.addRunFlow(rootId, runId, [{ stepId: 'a', type: 'api', generation: 1, attempts: 1, backoffMs: 1, maxDelayMs: 1 }]);
    await redis.srem(`${prefix}:runs:${rootId}:dependencies`, `${prefix}:agent-api:${stepJobId(runId, 'a', 1)}`);
    expect(await stateOf('runs', rootId)).to.equal('waiting-children');
    expect(await stack.deps.queues.pendingChildren('runs', rootId)).to.deep.equal([]);

    const report = await reconcileRun(stack.deps, runId);
    expect(report.parentsNudged).to.equal(1);
    await waitFor(async () => ((await waitForRun(stack, runId)).status === 'completed' ? true : undefined), 10_000, 'finalized again');
    await waitFor(async () => ((await stateOf('runs', rootId)) === 'completed' ? true : undefined), 10_000, 'root completed');
  });

  it('a fan-out parent waiting on a failed item listed both as ignored and unprocessed (D): resumes', async function () {
    const { runId, slug } = await start(
      (s) => `${header(s)}
  - id: fan
    agent: test-sleep
    foreach: \${{ [0, 1, 2] }}
    concurrency: 3
    onError: continue
    with:
      label: "${s}-\${{ item }}"
      delayMs: "\${{ item = 2 ? 2500 : 1 }}"
      fail: \${{ item = 1 }}
  - id: after
    agent: test-sleep
    needs: [fan]
    with: { label: "${s}-after", delayMs: 1 }
`,
    );
    startPool();
    const parentId = stepJobId(runId, 'fan', 1);
    const failedId = itemJobId(runId, 'fan', 1, 1);
    await waitFor(async () => ((await stateOf('agent-api', failedId)) === 'failed' ? true : undefined), 10_000, 'item 1 failed');
    // The failure went unrecorded (say Postgres was down), and the parent re-added the item it
    // still believed in flight: BullMQ puts the failed job back into the parent's dependencies.
    await stack.deps.database.db
      .update(stepItems)
      .set({ status: 'running' })
      .where(and(eq(stepItems.runId, runId), eq(stepItems.stepId, 'fan'), eq(stepItems.idx, 1)));
    await stack.deps.queues.addItemJobs(parentId, { runId, stepId: 'fan', type: 'api', generation: 1, attempts: 1, backoffMs: 1, maxDelayMs: 1 }, [1]);
    await waitFor(async () => (sleepCalls.get(`${slug}-2`) === 1 ? true : undefined), 10_000, 'item 2 started');
    await waitFor(async () => ((await stateOf('agent-api', itemJobId(runId, 'fan', 1, 2))) === 'completed' ? true : undefined), 10_000, 'item 2 done');
    const parent = await stack.deps.queues.get('agent-api').getJob(parentId);
    expect(Object.keys((await parent?.getIgnoredChildrenFailures()) ?? {})).to.have.length(1);
    expect((await stack.deps.queues.pendingChildren('agent-api', parentId)).map((c) => c.id)).to.deep.equal([failedId]);
    expect(await stateOf('agent-api', parentId)).to.equal('waiting-children');

    const report = await reconcileRun(stack.deps, runId);
    expect(report.deadJobsRemoved).to.be.at.least(1);
    const view = await waitForRun(stack, runId);
    expect(view.status, JSON.stringify(view.error)).to.equal('completed');
    expect(view.steps.find((s) => s.id === 'fan')?.output).to.have.length(3);
    expect(sleepCalls.get(`${slug}-after`)).to.equal(1);
  });

  it('a child run whose parent step job is gone: the parent step is re-created and picks up the result', async function () {
    const childSlug = uniqueSlug('child');
    await storeDefinition(
      stack,
      `${header(childSlug)}
  - id: work
    agent: test-sleep
    with: { label: "${childSlug}-work", delayMs: 1500 }
output:
  label: \${{ steps.work.output.label }}
`,
      agents,
    );
    const { runId } = await start(
      (s) => `${header(s)}
  - id: sub
    type: orchestrator
    run: { slug: ${childSlug} }
    with: {}
output:
  child: \${{ steps.sub.output.label }}
`,
    );
    startPool();
    const subJobId = stepJobId(runId, 'sub', 1);
    await waitFor(async () => (sleepCalls.get(`${childSlug}-work`) === 1 ? true : undefined), 10_000, 'child step started');
    expect(await stateOf('agent-orchestrator', subJobId)).to.equal('waiting-children');
    // Redis loses the parent step's job while its child run is working.
    await redis.zrem(`${prefix}:agent-orchestrator:waiting-children`, subJobId);
    await redis.del(`${prefix}:agent-orchestrator:${subJobId}`, `${prefix}:agent-orchestrator:${subJobId}:dependencies`);
    const [child] = await stack.deps.database.db.select().from(runs).where(eq(runs.parentRunId, runId));
    expect(child).to.not.equal(undefined);
    expect((await waitForRun(stack, child!.id)).status).to.equal('completed');
    await new Promise((r) => setTimeout(r, 1000));
    expect((await api<{ status: string }>(stack, 'GET', `/v1/runs/${runId}`)).body.status).to.equal('running');

    const report = await reconcileRun(stack.deps, runId);
    expect(report.jobsAdded).to.equal(1);
    const view = await waitForRun(stack, runId);
    expect(view.status, JSON.stringify(view.error)).to.equal('completed');
    expect(view.output).to.deep.equal({ child: `${childSlug}-work` });
  });

  it('starting a child run survives a lost parent key: the parent job is re-created, then the child attached', async function () {
    const childSlug = uniqueSlug('child');
    await storeDefinition(stack, `${header(childSlug)}\n  - id: work\n    agent: test-sleep\n    with: { label: "${childSlug}-work", delayMs: 1 }\n`, agents);
    const { runId } = await start((s) => `${header(s)}\n  - id: sub\n    type: orchestrator\n    run: { slug: ${childSlug} }\n    with: {}\n`);
    const subJobId = stepJobId(runId, 'sub', 1);
    // The step job was taken by a worker, then Redis lost its key (issue 13 A).
    const data = { runId, stepId: 'sub', generation: 1, backoffMs: 1000, maxDelayMs: 60_000 };
    const begun = await beginStep(stack.deps, data, subJobId);
    expect(begun.kind).to.equal('run');
    if (begun.kind !== 'run' || begun.spec.kind !== 'orchestrator') throw new Error('unexpected step start');
    await redis.lrem(`${prefix}:agent-orchestrator:wait`, 0, subJobId);
    await redis.del(`${prefix}:agent-orchestrator:${subJobId}`);

    const state = await advanceSubrun(stack.deps, data, begun.attempt, begun.spec, {}, stack.deps.queues.qualifiedName('agent-orchestrator'));
    expect(state.kind).to.equal('wait');
    expect(await stateOf('agent-orchestrator', subJobId)).to.not.equal('missing');
    const childRoot = await stack.deps.queues.get('runs').getJob(state.childRunId);
    expect(childRoot?.parentKey).to.equal(`${prefix}:agent-orchestrator:${subJobId}`);
    startPool();
    expect((await waitForRun(stack, runId)).status).to.equal('completed');
  });

  it('an infrastructure error does not spend the step attempt: one attempt, and the step still completes', async function () {
    const { runId, slug } = await start(
      (s) => `${header(s)}
  - id: a
    agent: test-infra-flaky
    with: { label: "${s}-a" }
`,
    );
    startPool();
    const view = await waitForRun(stack, runId);
    expect(view.status, JSON.stringify(view.error)).to.equal('completed');
    expect(infraCalls.get(`${slug}-a`)).to.equal(2);
    const job = await stack.deps.queues.get('agent-api').getJob(stepJobId(runId, 'a', 1));
    expect(job?.opts.attempts).to.equal(1);
    expect(job?.attemptsMade).to.equal(1);
  });
});
