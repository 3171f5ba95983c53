/**
 * The deferred claim (issue 8, `STEP_CLAIM_DEFER_MS`): a plain step's agent starts before its
 * attempt is recorded. Through the real API and in-process workers, against the test database.
 * Whether two events were written by one transaction is read from their rows' `xmin`.
 */
import { expect } from 'chai';
import { api, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { uniqueSlug } from './support/test-agents.js';
import { queueForStepType } from '../queues/index.js';

interface EventRow {
  seq: number;
  type: string;
  step_id: string | null;
  xid: string;
  created_at: string;
}

async function eventRows(stack: Stack, runId: string): Promise<EventRow[]> {
  return stack.deps.database.sql<EventRow[]>`
    select seq, type, step_id, xmin::text as xid, to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US') as created_at
      from run_events where run_id = ${runId} order by seq`;
}

async function attemptRows(stack: Stack, runId: string, stepId: string): Promise<Array<{ attempt: number; status: string; ms: number }>> {
  return stack.deps.database.sql<Array<{ attempt: number; status: string; ms: number }>>`
    select attempt, status, extract(epoch from finished_at - started_at)::float8 * 1000 as ms
      from step_attempts where run_id = ${runId} and step_id = ${stepId} order by attempt`;
}

async function start(stack: Stack, steps: string): Promise<string> {
  const slug = uniqueSlug('defer');
  await storeDefinition(stack, `slug: ${slug}\nversion: 1\nname: ${slug}\ninput: { type: object }\nsteps:\n${steps}`);
  const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
  expect(res.status, JSON.stringify(res.body)).to.equal(202);
  return res.body.id;
}

/** A function step that keeps its thread busy for `ms` milliseconds (no effect, so no early claim). */
const spinning = (id: string, ms: number, needs = ''): string =>
  `  - id: ${id}\n    type: function\n${needs ? `    needs: [${needs}]\n` : ''}    code: "function main() { const t = Date.now(); while (Date.now() - t < ${ms}) {} return { spun: ${ms} }; }"\n`;

describe('the deferred claim (STEP_CLAIM_DEFER_MS)', function () {
  this.timeout(60_000);

  describe('with a claim due after a minute', function () {
    let stack: Stack;
    before(async function () {
      stack = await startStack({ config: { steps: { claimDeferMs: 60_000 } } });
    });
    after(async function () {
      await stack?.close();
    });

    it('claims and completes a step done before its claim was due in one transaction, started first', async function () {
      const runId = await start(stack, `${spinning('a', 0)}${spinning('b', 0, 'a')}`);
      const run = await waitForRun(stack, runId);
      expect(run.status, JSON.stringify(run)).to.equal('completed');
      const events = await eventRows(stack, runId);
      for (const step of ['a', 'b']) {
        const started = events.find((e) => e.type === 'step.started' && e.step_id === step);
        const completed = events.find((e) => e.type === 'step.completed' && e.step_id === step);
        expect(started, `step.started of ${step}`).to.not.equal(undefined);
        expect(completed, `step.completed of ${step}`).to.not.equal(undefined);
        expect(started?.xid, `${step}: one transaction`).to.equal(completed?.xid);
        expect(started!.seq).to.be.lessThan(completed!.seq);
        expect(started!.created_at <= completed!.created_at, `${step}: started at or before completed`).to.equal(true);
        expect((await attemptRows(stack, runId, step)).map((a) => [a.attempt, a.status])).to.deep.equal([[1, 'completed']]);
      }
      // The run's first step also started the run, in the same transaction.
      const runStarted = events.find((e) => e.type === 'run.started');
      expect(runStarted?.xid).to.equal(events.find((e) => e.type === 'step.started' && e.step_id === 'a')?.xid);
    });

    it('records the attempt before its first effect (a progress report), then completes it', async function () {
      const runId = await start(stack, `  - id: p\n    type: function\n    code: "async function main(input, ctx) { await ctx.progress(0.5, 'half'); return { ok: true }; }"\n`);
      const run = await waitForRun(stack, runId);
      expect(run.status, JSON.stringify(run)).to.equal('completed');
      const events = await eventRows(stack, runId);
      const types = events.filter((e) => e.step_id === 'p').map((e) => e.type);
      expect(types).to.deep.equal(['step.queued', 'step.started', 'step.progress', 'step.completed']);
      const started = events.find((e) => e.type === 'step.started');
      const completed = events.find((e) => e.type === 'step.completed');
      expect(started?.xid, 'claimed in its own transaction, before the progress').to.not.equal(completed?.xid);
    });

    it('a run cancelled while its step is unclaimed ends with no attempt recorded', async function () {
      const runId = await start(stack, spinning('slow', 1500));
      await waitFor(
        async () => ((await stack.deps.queues.inspectJob(queueForStepType('function'), `${runId}.slow.1`)).state === 'active' ? true : undefined),
        20_000,
        'the step job active',
      );
      const cancelled = await api(stack, 'POST', `/v1/runs/${runId}/cancel`, {});
      expect(cancelled.status, JSON.stringify(cancelled.body)).to.equal(200);
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('cancelled');
      // The agent's outcome found the run cancelled: nothing was recorded for it, and its job ended.
      const state = await waitFor(
        async () => {
          const job = await stack.deps.queues.inspectJob(queueForStepType('function'), `${runId}.slow.1`);
          return job.state === 'active' ? undefined : job.state;
        },
        20_000,
        'the step job ended',
      );
      expect(state).to.be.oneOf(['missing', 'completed']);
      expect(await attemptRows(stack, runId, 'slow')).to.deep.equal([]);
      const [step] = await stack.deps.database.sql<Array<{ status: string }>>`select status from steps where run_id = ${runId} and step_id = 'slow'`;
      expect(step?.status).to.equal('cancelled');
    });
  });

  describe('with a claim due after 300 ms', function () {
    let stack: Stack;
    before(async function () {
      stack = await startStack({ config: { steps: { claimDeferMs: 300 } } });
    });
    after(async function () {
      await stack?.close();
    });

    it('records a slower step running from when its agent started, then completes it', async function () {
      const runId = await start(stack, spinning('slow', 1000));
      await waitFor(
        async () => {
          const [row] = await stack.deps.database.sql<Array<{ status: string }>>`select status from steps where run_id = ${runId} and step_id = 'slow'`;
          return row?.status === 'running' ? true : undefined;
        },
        20_000,
        'the step recorded running while its agent runs',
      );
      const run = await waitForRun(stack, runId);
      expect(run.status, JSON.stringify(run)).to.equal('completed');
      const [attempt, ...more] = await attemptRows(stack, runId, 'slow');
      expect(more).to.deep.equal([]);
      expect(attempt?.status).to.equal('completed');
      // Its start is the agent's, not the claim's (300 ms later): the attempt lasted the whole spin.
      expect(attempt?.ms).to.be.at.least(995);
      const events = await eventRows(stack, runId);
      const started = events.find((e) => e.type === 'step.started');
      const completed = events.find((e) => e.type === 'step.completed');
      expect(started?.xid).to.not.equal(completed?.xid);
    });
  });
});
