/**
 * The one-round-trip transitions of `db/migrations/0015_start-run-claim-fixed.sql`: a run's
 * start (`baton_start_run`) writes what the general transaction writes, decides idempotency keys
 * (also under a race) and a cached "latest version"; a step with a fixed input is claimed
 * without reading the run (`baton_claim_step_fixed`), the run's first claim included.
 */
import { expect } from 'chai';
import { api, runEvents, startStack, storeDefinition, waitForRun, type Stack } from './support/stack.js';
import { sleepAgent, uniqueSlug } from './support/test-agents.js';
import { rootJobId, stepJobId } from '../queues/index.js';
import { ensureStepJobs } from '../services/engine/index.js';

/** Root `a` (with a `when:` when `gated`: the general start), `b` after it, `undo` compensating `a`. */
function definition(slug: string, version: number, gated: boolean, label = 'x'): string {
  return `
slug: ${slug}
version: ${version}
name: One trip
input: { type: object }
steps:
  - id: a
    agent: test-sleep
    ${gated ? 'when: ${{ input.go }}' : ''}
    compensate: undo
    with: { label: "${label}-a", delayMs: 1 }
  - id: b
    agent: test-sleep
    needs: [a]
    with: { label: "${label}-b", delayMs: 1 }
  - id: undo
    agent: test-sleep
    with: { label: "${label}-undo", delayMs: 1 }
output:
  label: \${{ steps.b.output.label }}
`;
}

interface Written {
  run: Record<string, unknown>;
  steps: Array<Record<string, unknown>>;
  events: Array<Record<string, unknown>>;
}

/** What a start wrote, without ids and times. */
async function written(stack: Stack, runId: string): Promise<Written> {
  const { sql } = stack.deps.database;
  const [run] = await sql`select status, event_seq, agent_versions, root_generation, input, sealed_input, webhook_url,
                                 started_at is null as unstarted from runs where id = ${runId}`;
  const steps = await sql`select step_id, type, agent, status, needs, generation, attempts, queued_at is not null as queued
                            from steps where run_id = ${runId} order by step_id`;
  const events = await sql`select seq, type, step_id, data - 'definition' as data, notify from run_events where run_id = ${runId} order by seq`;
  return { run: { ...run }, steps: steps.map((r) => ({ ...r })), events: events.map((r) => ({ ...r })) };
}

describe('one-round-trip start and claim (issue 8)', function () {
  let stack: Stack;
  before(async function () {
    stack = await startStack({ workers: false, agents: [sleepAgent] });
  });
  after(async function () {
    await stack.close();
  });

  it('writes the same run, steps and events as the general transaction', async function () {
    const [fast, general] = [uniqueSlug('one-trip'), uniqueSlug('general')];
    await storeDefinition(stack, definition(fast, 1, false), [sleepAgent]);
    await storeDefinition(stack, definition(general, 1, true), [sleepAgent]);
    const a = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: fast, input: { go: true } });
    const b = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: general, input: { go: true } });
    expect([a.status, b.status]).to.deep.equal([202, 202]);
    const [one, two] = [await written(stack, a.body.id), await written(stack, b.body.id)];
    expect(one).to.deep.equal(two);
    expect(one.steps.map((s) => [s.step_id, s.status])).to.deep.equal([['a', 'queued'], ['b', 'pending'], ['undo', 'compensation']]);
    expect(one.events.map((e) => [e.seq, e.type, e.step_id])).to.deep.equal([[1, 'run.queued', null], [2, 'step.queued', 'a']]);
    expect(one.run.event_seq).to.equal(2);
  });

  it('returns the run of a used idempotency key, also to racing requests; another request under the key is 422 IDEMPOTENCY_KEY_REUSED', async function () {
    const slug = uniqueSlug('one-trip-key');
    await storeDefinition(stack, definition(slug, 1, false), [sleepAgent]);
    const key = `k-${slug}`;
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} }, { 'idempotency-key': key })),
    );
    expect(answers.map((r) => r.status).sort()).to.deep.equal([200, 200, 200, 200, 200, 202]);
    expect(new Set(answers.map((r) => r.body.id)).size).to.equal(1);
    const refused = await api<{ error: { code: string; details: { runId: string } } }>(stack, 'POST', '/v1/runs', { definition: `${slug}-unknown`, input: {} }, { 'idempotency-key': key });
    expect(refused.status).to.equal(422);
    expect(refused.body.error.code).to.equal('IDEMPOTENCY_KEY_REUSED');
    expect(refused.body.error.details.runId).to.equal(answers[0]?.body.id);
    const [{ n } = { n: 0 }] = await stack.deps.database.sql<Array<{ n: number }>>`select count(*)::int as n from runs where idempotency_key = ${key}`;
    expect(n).to.equal(1);
  });

  it('re-adds a step job seen missing only while Postgres still says the step is live (a step that just finished is left alone)', async function () {
    const slug = uniqueSlug('one-trip-reconcile');
    await storeDefinition(stack, definition(slug, 1, false), [sleepAgent]);
    const { body } = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
    const { sql } = stack.deps.database;
    const jobId = stepJobId(body.id, 'a', 1);
    const spec = { stepId: 'a', type: 'api' as const, generation: 1, attempts: 1, backoffMs: 1000, maxDelayMs: 60_000 };
    expect(await stack.deps.queues.removeJob('agent-api', jobId)).to.equal(true); // test-sleep is an api agent
    // As if it completed (and left Redis) after the caller read the step as live.
    await sql`update steps set status = 'completed' where run_id = ${body.id} and step_id = 'a'`;
    const skipped = await ensureStepJobs(stack.deps, rootJobId(body.id, 1), body.id, [spec]);
    expect(skipped.jobsAdded).to.equal(0);
    await sql`update steps set status = 'queued' where run_id = ${body.id} and step_id = 'a'`;
    const added = await ensureStepJobs(stack.deps, rootJobId(body.id, 1), body.id, [spec]);
    expect(added.jobsAdded).to.equal(1);
    expect((await stack.deps.queues.inspectJob('agent-api', jobId)).state).to.equal('waiting');
  });

  it('starts the latest version although an earlier one was resolved (and cached) before', async function () {
    const slug = uniqueSlug('one-trip-latest');
    await storeDefinition(stack, definition(slug, 1, false), [sleepAgent]);
    const first = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
    await storeDefinition(stack, definition(slug, 2, false), [sleepAgent]);
    const second = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
    const versions = await stack.deps.database.sql<Array<{ definition_version: number }>>`
      select definition_version from runs where id in ${stack.deps.database.sql([first.body.id, second.body.id])} order by created_at`;
    expect(versions.map((v) => v.definition_version)).to.deep.equal([1, 2]);
  });
});

describe('fixed-input claims (issue 8)', function () {
  let stack: Stack;
  before(async function () {
    stack = await startStack({ agents: [sleepAgent] });
  });
  after(async function () {
    await stack.close();
  });

  it('claims every step of a run in one statement, the first one starting the run, with the general events in order', async function () {
    const slug = uniqueSlug('fixed-claim');
    await storeDefinition(stack, definition(slug, 1, false, slug), [sleepAgent]);
    const { body } = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
    const view = await waitForRun(stack, body.id);
    expect(view.status).to.equal('completed');
    expect(view.output).to.deep.equal({ label: `${slug}-b` });
    const events = await runEvents(stack, body.id);
    expect(events.map((e) => `${e.type}${e.stepId ? `:${e.stepId}` : ''}`)).to.deep.equal([
      'run.queued',
      'step.queued:a',
      'run.started',
      'step.started:a',
      'step.completed:a',
      'step.queued:b',
      'step.started:b',
      'step.completed:b',
      'run.completed',
    ]);
    expect(events.map((e) => e.seq)).to.deep.equal(events.map((_, i) => i + 1));
    const attempts = await stack.deps.database.sql<Array<{ step_id: string; attempt: number; status: string; input: unknown }>>`
      select step_id, attempt, status, input from step_attempts where run_id = ${body.id} order by step_id`;
    expect(attempts).to.deep.equal([
      { step_id: 'a', attempt: 1, status: 'completed', input: { label: `${slug}-a`, delayMs: 1 } },
      { step_id: 'b', attempt: 1, status: 'completed', input: { label: `${slug}-b`, delayMs: 1 } },
    ]);
    const [run] = await stack.deps.database.sql<Array<{ started: boolean }>>`select started_at is not null as started from runs where id = ${body.id}`;
    expect(run?.started).to.equal(true);
  });
});
