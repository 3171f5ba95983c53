/**
 * The run engine against real Redis and Postgres, with in-process API and workers:
 * DAG execution (diamond), checkpoints parked in BullMQ's delayed state, decisions, SSE replay
 * and Bull Board's guard.
 */
import { expect } from 'chai';
import { and, eq } from 'drizzle-orm';
import { createParser } from 'eventsource-parser';
import { SignJWT } from 'jose';
import { Job } from 'bullmq';
import sinon from 'sinon';
import { approvals } from '../db/index.js';
import { stepAttempts } from '../db/index.js';
import { stepJobId } from '../queues/index.js';
import { api, runEvents, startStack, storeDefinition, waitFor, waitForRun, type EventView, type Stack } from './support/stack.js';
import { sleepAgent, sleepCalls, uniqueSlug } from './support/test-agents.js';
import { startReceiver, type Receiver } from './support/receiver.js';

function diamond(slug: string, tag: string): string {
  return `
slug: ${slug}
version: 1
name: Diamond
input: { type: object }
steps:
  - id: a
    agent: test-sleep
    with: { label: "${tag}-a", delayMs: 5 }
  - id: b
    agent: test-sleep
    needs: [a]
    with: { label: "${tag}-b", delayMs: 300 }
  - id: c
    agent: test-sleep
    needs: [a]
    with: { label: "${tag}-c", delayMs: 10 }
  - id: d
    agent: test-sleep
    needs: [b, c]
    with:
      label: "${tag}-d"
      delayMs: 5
output:
  joined: \${{ [steps.b.output.label, steps.c.output.label, steps.d.output.label] }}
`;
}

function approvalFlow(slug: string, tag: string): string {
  return `
slug: ${slug}
version: 1
name: Approval
input: { type: object }
steps:
  - id: prepare
    agent: test-sleep
    with: { label: "${tag}-prepare", delayMs: 5 }
  - id: review
    type: checkpoint
    needs: [prepare]
    prompt: "Approve \${{ steps.prepare.output.label }}?"
    show: \${{ steps.prepare.output }}
    timeout: 1h
  - id: finish
    agent: test-sleep
    needs: [review]
    with: { label: "${tag}-finish", delayMs: 5 }
`;
}

const seqs = (events: EventView[]) => events.map((e) => e.seq);
const find = (events: EventView[], type: string, stepId?: string) =>
  events.filter((e) => e.type === type && (stepId === undefined || e.stepId === stepId));

describe('run engine', function () {
  let stack: Stack;
  let receiver: Receiver;

  before(async function () {
    stack = await startStack({ agents: [sleepAgent] });
    receiver = await startReceiver(stack.config.auth.webhookSecret);
  });
  after(async function () {
    await receiver?.close();
    await stack?.close();
  });

  describe('a diamond DAG (a → b, c → d)', function () {
    it('runs each step exactly once and the join only after both branches, in 5 concurrent runs', async function () {
      const slug = uniqueSlug('diamond');
      await storeDefinition(stack, diamond(slug, slug), [sleepAgent]);
      const ids = await Promise.all(
        [0, 1, 2, 3, 4].map(async () => {
          const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
          expect(res.status).to.equal(202);
          return res.body.id;
        }),
      );
      for (const id of ids) {
        const run = await waitForRun(stack, id);
        expect(run.status, JSON.stringify(run.error)).to.equal('completed');
        expect(run.output).to.deep.equal({ joined: [`${slug}-b`, `${slug}-c`, `${slug}-d`] });
        for (const step of run.steps) {
          expect(step.status, step.id).to.equal('completed');
          expect(step.attempts, step.id).to.equal(1);
        }
        const events = await runEvents(stack, id);
        expect(seqs(events)).to.deep.equal(events.map((_, i) => i + 1));
        for (const s of ['a', 'b', 'c', 'd']) {
          expect(find(events, 'step.completed', s), s).to.have.length(1);
          expect(find(events, 'step.queued', s), s).to.have.length(1);
        }
        const dStart = find(events, 'step.started', 'd')[0]!.seq;
        expect(dStart).to.be.greaterThan(find(events, 'step.completed', 'b')[0]!.seq);
        expect(dStart).to.be.greaterThan(find(events, 'step.completed', 'c')[0]!.seq);
        expect(find(events, 'run.completed')).to.have.length(1);
        const root = await stack.deps.queues.get('runs').getJob(id);
        expect(await root?.getState()).to.equal('completed');
      }
      // The shared labels mean the agent ran once per step per run: 5 runs → 5 calls per label.
      for (const s of ['a', 'b', 'c', 'd']) expect(sleepCalls.get(`${slug}-${s}`), s).to.equal(5);
    });

    it('fails the run when a step fails, without running its dependents', async function () {
      const slug = uniqueSlug('failing');
      await storeDefinition(
        stack,
        `
slug: ${slug}
version: 1
name: Failing
input: { type: object }
steps:
  - id: a
    agent: test-sleep
    with: { label: "${slug}-a", delayMs: 1, fail: true }
  - id: b
    agent: test-sleep
    needs: [a]
    with: { label: "${slug}-b", delayMs: 1 }
`,
        [sleepAgent],
      );
      const { body } = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
      const run = await waitForRun(stack, body.id);
      expect(run.status).to.equal('failed');
      expect(run.error?.code).to.equal('STEP_FAILED');
      expect(run.error?.message).to.contain('a failed on purpose');
      expect(run.steps.find((s) => s.id === 'b')?.status).to.equal('cancelled');
      expect(sleepCalls.get(`${slug}-b`)).to.equal(undefined);
    });
  });

  describe('starting runs', function () {
    it('answers 400 naming the field, 404 for an unknown definition, 401 without a key', async function () {
      const missing = await api<{ error: { code: string; field: string } }>(stack, 'POST', '/v1/runs', { input: {} });
      expect(missing.status).to.equal(400);
      expect(missing.body.error).to.include({ code: 'VALIDATION_FAILED', field: 'definition' });
      const badInput = await api<{ error: { field: string } }>(stack, 'POST', '/v1/runs', {
        definition: 'kpi-tracking',
        input: { symbols: ['AAPL'], from: '2005-13-45', to: '2009-12-31' },
      });
      expect(badInput.status).to.equal(400);
      expect(badInput.body.error.field).to.equal('input.from');
      const unknown = await api<{ error: { code: string } }>(stack, 'POST', '/v1/runs', { definition: 'nope', input: {} });
      expect(unknown.status).to.equal(404);
      expect(unknown.body.error.code).to.equal('NOT_FOUND');
      const anonymous = await fetch(`${stack.baseUrl}/v1/runs`, { method: 'POST' });
      expect(anonymous.status).to.equal(401);
    });

    it('returns the same run for the same Idempotency-Key', async function () {
      const slug = uniqueSlug('idem');
      await storeDefinition(stack, diamond(slug, slug), [sleepAgent]);
      const key = uniqueSlug('key');
      const first = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} }, { 'idempotency-key': key });
      const again = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} }, { 'idempotency-key': key });
      expect(first.status).to.equal(202);
      expect(again.status).to.equal(200);
      expect(again.body.id).to.equal(first.body.id);
      await waitForRun(stack, first.body.id);
    });
  });

  describe('checkpoints', function () {
    async function startApprovalRun(): Promise<{ runId: string; slug: string }> {
      const slug = uniqueSlug('approval');
      await storeDefinition(stack, approvalFlow(slug, slug), [sleepAgent]);
      const { body } = await api<{ id: string }>(stack, 'POST', '/v1/runs', {
        definition: slug,
        input: {},
        webhookUrl: `${receiver.url}/webhooks`,
      });
      return { runId: body.id, slug };
    }

    async function requestedApproval(runId: string): Promise<Record<string, unknown>> {
      return waitFor(
        async () =>
          receiver.webhooks.find(
            (w) => w.type === 'checkpoint.requested' && w.data.runId === runId,
          )?.data.approval as Record<string, unknown> | undefined,
        15_000,
        'checkpoint.requested webhook',
      );
    }

    it('parks in the delayed state until a signed decideUrl approves it, then resumes', async function () {
      const { runId, slug } = await startApprovalRun();
      const approval = await requestedApproval(runId);
      expect(approval.prompt).to.equal(`Approve ${slug}-prepare?`);
      expect(approval.show).to.include({ label: `${slug}-prepare` });
      expect(String(approval.decideUrl)).to.match(/\/v1\/approvals\/[0-9a-f-]+\/decision\?token=/);

      const job = await stack.deps.queues.get('checkpoints').getJob(stepJobId(runId, 'review', 1));
      await waitFor(async () => ((await job?.getState()) === 'delayed' ? true : undefined), 10_000, 'parked job');
      const pending = await api<{ items: Array<{ id: string; runId: string }> }>(stack, 'GET', '/v1/approvals?status=pending');
      expect(pending.body.items.map((a) => a.id)).to.include(approval.id);
      const waiting = await api<{ status: string; steps: Array<{ id: string; status: string }> }>(stack, 'GET', `/v1/runs/${runId}`);
      expect(waiting.body.status).to.equal('running');
      expect(waiting.body.steps.find((s) => s.id === 'finish')?.status).to.equal('pending');

      const decided = await fetch(String(approval.decideUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ decision: 'continue', comment: 'fine' }),
      });
      expect(decided.status).to.equal(200);
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('completed');
      expect(run.approvals[0]).to.include({ status: 'decided', decision: 'continue' });
      const events = await runEvents(stack, runId);
      const resolved = find(events, 'checkpoint.resolved')[0];
      // A link of a checkpoint without approvers decides as the link it is (issue 12), never `anyone`.
      expect(resolved?.data).to.include({ decision: 'continue', decidedBy: `link:${String(approval.id)}`, via: 'token' });
      expect(find(events, 'step.started', 'finish')[0]!.seq).to.be.greaterThan(resolved!.seq);
      expect(sleepCalls.get(`${slug}-finish`)).to.equal(1);
      // No event or stored payload carries a usable token.
      expect(JSON.stringify(events)).not.to.contain('token=');
    });

    it('takes a decision that arrives while the checkpoint job is still active, before it parks', async function () {
      const slug = uniqueSlug('race');
      await storeDefinition(stack, approvalFlow(slug, slug), [sleepAgent]);
      const { body } = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
      const runId = body.id;
      let decidedWhileActive: number | undefined;
      // eslint-disable-next-line @typescript-eslint/unbound-method -- called back with the job as `this`
      const park = Job.prototype.moveToDelayed;
      // Decide in the window between the approval's commit and the job parking (the real
      // moveToDelayed still runs afterwards). Promote finds no delayed job then.
      sinon.stub(Job.prototype, 'moveToDelayed').callsFake(async function (this: Job, timestamp: number, token?: string) {
        const data = this.data as { runId?: string };
        if (this.queueName === 'checkpoints' && data.runId === runId && decidedWhileActive === undefined) {
          expect(await this.getState()).to.equal('active');
          const [approval] = await stack.deps.database.db.select().from(approvals).where(eq(approvals.runId, runId));
          decidedWhileActive = (await api(stack, 'POST', `/v1/approvals/${approval!.id}/decision`, { decision: 'continue' })).status;
        }
        return park.call(this, timestamp, token);
      });
      // The deadline is an hour away: only the self-promote after parking can finish this run now.
      const run = await waitForRun(stack, runId, 15_000);
      expect(decidedWhileActive).to.equal(200);
      expect(run.status).to.equal('completed');
      expect(run.approvals[0]).to.include({ status: 'decided', decision: 'continue' });
    });

    it('refuses forged, reused and cross-approval tokens and changes nothing', async function () {
      const first = await startApprovalRun();
      const second = await startApprovalRun();
      const a1 = await requestedApproval(first.runId);
      const a2 = await requestedApproval(second.runId);
      const url1 = new URL(String(a1.decideUrl));
      const token1 = url1.searchParams.get('token') ?? '';
      const post = (approvalId: unknown, token: string) =>
        fetch(`${stack.baseUrl}/v1/approvals/${String(approvalId)}/decision?token=${encodeURIComponent(token)}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ decision: 'continue' }),
        });

      // Signed with another key, claiming approval 1.
      const forgedKey = new TextEncoder().encode('not-the-baton-secret-not-the-baton-secret');
      const forged = await new SignJWT({ apr: a1.id, gen: 1 })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer('baton')
        .setAudience('baton:approval-decision')
        .setSubject(`link:${String(a1.id)}`)
        .setJti('forged')
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(forgedKey);
      expect((await post(a1.id, forged)).status).to.equal(401);
      expect((await post(a1.id, `${token1}x`)).status).to.equal(401);
      expect((await post(a1.id, 'garbage')).status).to.equal(401);
      // A genuine token for approval 1 does nothing to approval 2.
      expect((await post(a2.id, token1)).status).to.equal(403);
      const still = await api<{ status: string }>(stack, 'GET', `/v1/approvals/${String(a2.id)}`);
      expect(still.body.status).to.equal('pending');

      // Used once: accepted; reused: refused, and the standing decision is unchanged.
      expect((await post(a1.id, token1)).status).to.equal(200);
      const before = await api<{ decidedAt: string; comment: string | null }>(stack, 'GET', `/v1/approvals/${String(a1.id)}`);
      const eventsBefore = await runEvents(stack, first.runId);
      const reused = await post(a1.id, token1);
      expect(reused.status).to.equal(409);
      const after = await api<{ decidedAt: string }>(stack, 'GET', `/v1/approvals/${String(a1.id)}`);
      expect(after.body.decidedAt).to.equal(before.body.decidedAt);
      const eventsAfter = await runEvents(stack, first.runId);
      expect(eventsAfter.filter((e) => e.type === 'checkpoint.resolved')).to.have.length(1);
      expect(eventsAfter.length).to.be.at.least(eventsBefore.length);

      // Decide the second through the API key instead, so both runs finish.
      const byKey = await api(stack, 'POST', `/v1/approvals/${String(a2.id)}/decision`, { decision: 'continue' });
      expect(byKey.status).to.equal(200);
      expect((await waitForRun(stack, first.runId)).status).to.equal('completed');
      expect((await waitForRun(stack, second.runId)).status).to.equal('completed');
      expect(receiver.rejected).to.equal(0);
    });

    it('an abort decision cancels the run and skips the rest', async function () {
      const { runId, slug } = await startApprovalRun();
      const approval = await requestedApproval(runId);
      const refused = await api<{ error: { field: string } }>(stack, 'POST', `/v1/approvals/${String(approval.id)}/decision`, { decision: 'maybe' });
      expect(refused.status).to.equal(400);
      expect(refused.body.error.field).to.equal('decision');
      const res = await api(stack, 'POST', `/v1/approvals/${String(approval.id)}/decision`, { decision: 'abort', comment: 'numbers look wrong' });
      expect(res.status).to.equal(200);
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('cancelled');
      expect(run.error?.message).to.contain('numbers look wrong');
      expect(sleepCalls.get(`${slug}-finish`)).to.equal(undefined);
    });

    it('SSE resumed with Last-Event-ID loses and repeats nothing', async function () {
      const { runId } = await startApprovalRun();
      const headers = { authorization: `Bearer ${stack.apiKey}` };
      const read = async (lastEventId: number | undefined, stopAt: (e: EventView) => boolean) => {
        const controller = new AbortController();
        const res = await fetch(`${stack.baseUrl}/v1/runs/${runId}/stream`, {
          headers: lastEventId === undefined ? headers : { ...headers, 'last-event-id': String(lastEventId) },
          signal: controller.signal,
        });
        expect(res.headers.get('content-type')).to.contain('text/event-stream');
        const got: Array<{ id: string | undefined; event: string | undefined; e: EventView }> = [];
        let done = false;
        const parser = createParser({
          onEvent(m) {
            if (done) return;
            const e = JSON.parse(m.data) as EventView;
            got.push({ id: m.id, event: m.event, e });
            if (stopAt(e)) done = true;
          },
        });
        const decoder = new TextDecoder();
        try {
          for await (const chunk of res.body!) {
            parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
            if (done) break;
          }
        } finally {
          controller.abort();
        }
        return got;
      };
      const firstPart = await read(undefined, (e) => e.type === 'checkpoint.requested');
      const lastSeen = Number(firstPart.at(-1)!.id);
      const approval = await requestedApproval(runId);
      const decided = await fetch(String(approval.decideUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ decision: 'continue' }),
      });
      expect(decided.status).to.equal(200);
      const rest = await read(lastSeen, () => false); // the server ends the stream after run.completed
      const all = [...firstPart, ...rest];
      const full = await runEvents(stack, runId);
      expect(all.map((x) => Number(x.id))).to.deep.equal(seqs(full));
      expect(all.map((x) => x.event)).to.deep.equal(full.map((e) => e.type));
      expect(all.at(-1)?.event).to.equal('run.completed');
    });
  });

  describe('Bull Board', function () {
    it('refuses anonymous access and organization keys; accepts the platform-admin key as Bearer or Basic password', async function () {
      const anonymous = await fetch(`${stack.baseUrl}/admin/queues`);
      expect(anonymous.status).to.equal(401);
      expect(anonymous.headers.get('www-authenticate')).to.contain('Basic');
      const wrong = await fetch(`${stack.baseUrl}/admin/queues/api/queues`, {
        headers: { authorization: `Basic ${Buffer.from('admin:wrong-key').toString('base64')}` },
      });
      expect(wrong.status).to.equal(401);
      // An organization's admin key would see every organization's jobs: refused.
      const organizationKey = await fetch(`${stack.baseUrl}/admin/queues/api/queues`, { headers: { authorization: `Bearer ${stack.apiKey}` } });
      expect(organizationKey.status).to.equal(403);
      expect(((await organizationKey.json()) as { error: { code: string } }).error.code).to.equal('FORBIDDEN');
      const bearer = await fetch(`${stack.baseUrl}/admin/queues/api/queues`, { headers: { authorization: `Bearer ${stack.adminApiKey}` } });
      expect(bearer.status).to.equal(200);
      const body = (await bearer.json()) as { queues: Array<{ name: string }> };
      expect(body.queues.map((q) => q.name)).to.include.members(['runs', 'checkpoints', 'agent-tool', 'webhooks']);
      const basic = await fetch(`${stack.baseUrl}/admin/queues`, {
        headers: { authorization: `Basic ${Buffer.from(`admin:${stack.adminApiKey}`).toString('base64')}` },
      });
      expect(basic.status).to.equal(200);
    });
  });

  describe('health', function () {
    it('/healthz and /readyz answer 200 when Redis and Postgres answer', async function () {
      expect((await fetch(`${stack.baseUrl}/healthz`)).status).to.equal(200);
      const ready = await fetch(`${stack.baseUrl}/readyz`);
      expect(ready.status).to.equal(200);
      expect(await ready.json()).to.include({ redis: 'ok', postgres: 'ok' });
    });
  });

  it('records one completed attempt per step in step_attempts', async function () {
    const slug = uniqueSlug('attempts');
    await storeDefinition(stack, diamond(slug, slug), [sleepAgent]);
    const { body } = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
    await waitForRun(stack, body.id);
    const rows = await stack.deps.database.db
      .select()
      .from(stepAttempts)
      .where(and(eq(stepAttempts.runId, body.id), eq(stepAttempts.status, 'completed')));
    expect(rows.map((r) => r.stepId).sort()).to.deep.equal(['a', 'b', 'c', 'd']);
  });
});
