/**
 * Human-in-the-loop approvals against real Redis and Postgres (issue 4): every decision path,
 * modified data, approvers and quorum, self-approval, concurrency, token abuse, deadlines,
 * reminders, signed integrations and the inbox.
 */
import { expect } from 'chai';
import { Webhook } from 'standardwebhooks';
import { startReceiver, type Receiver } from './support/receiver.js';
import { approvalFlow } from './support/approval-flow.js';
import { api, runEvents, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { sleepAgent, sleepCalls, uniqueSlug } from './support/test-agents.js';

interface ApprovalView {
  id: string;
  runId: string;
  stepId: string;
  status: string;
  decision: string | null;
  decidedBy: string | null;
  decidedVia: string | null;
  prompt: string;
  approvers: unknown[];
  expiresAt: string;
  ageMs?: number;
  attempt: number;
  decideUrl?: string;
  decideUrls?: Array<{ approver: string; url: string }>;
  responses?: Array<{ approver: string; via: string; decision: string; comment: string | null; data: unknown }>;
  continues?: number;
  required?: number;
}

describe('approvals', function () {
  this.timeout(60_000);
  let stack: Stack;
  let receiver: Receiver;
  const as = (key: string) => ({ baseUrl: stack.baseUrl, apiKey: key });

  before(async function () {
    stack = await startStack({ agents: [sleepAgent] });
    receiver = await startReceiver(stack.config.auth.webhookSecret);
  });
  after(async function () {
    await receiver?.close();
    await stack?.close();
  });

  async function createKey(subject: string, roles: string[] = [], scopes = ['runs:read', 'runs:write', 'approvals:decide']): Promise<string> {
    const res = await api<{ key: string }>(stack, 'POST', '/v1/api-keys', { name: subject, subject, scopes, roles });
    expect(res.status).to.equal(201);
    return res.body.key;
  }

  async function start(reviewLines: string[], key = stack.apiKey): Promise<{ runId: string; slug: string }> {
    const slug = uniqueSlug('appr');
    await storeDefinition(stack, approvalFlow(slug, reviewLines), [sleepAgent]);
    const res = await api<{ id: string }>(as(key), 'POST', '/v1/runs', { definition: slug, input: {}, webhookUrl: `${receiver.url}/webhooks` });
    expect(res.status).to.equal(202);
    return { runId: res.body.id, slug };
  }

  /** The pending approval of a run (optionally a later attempt than `after`). */
  async function pending(runId: string, minAttempt = 1): Promise<ApprovalView> {
    return waitFor(
      async () => {
        const { body } = await api<{ items: ApprovalView[] }>(stack, 'GET', '/v1/approvals?status=pending&limit=200');
        return body.items.find((a) => a.runId === runId && a.attempt >= minAttempt);
      },
      20_000,
      `pending approval of ${runId}`,
    );
  }

  /** The notification (with decide links) of an approval, from the signed webhook. */
  async function notice(approvalId: string): Promise<ApprovalView> {
    return waitFor(
      async () =>
        receiver.webhooks.find((w) => w.type === 'checkpoint.requested' && (w.data.approval as ApprovalView).id === approvalId)?.data
          .approval as ApprovalView | undefined,
      10_000,
      'checkpoint.requested webhook',
    );
  }

  const decide = (key: string, approvalId: string, body: Record<string, unknown>) =>
    api<ApprovalView & { error?: { code: string; field?: string; details?: Record<string, unknown> } }>(
      as(key),
      'POST',
      `/v1/approvals/${approvalId}/decision`,
      body,
    );

  const postToken = (url: string, body: Record<string, unknown>) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  describe('decisions', function () {
    const modify = ['modify: { type: object, properties: { limit: { type: integer, minimum: 1 } }, required: [limit], additionalProperties: false }'];

    it('continue with modified data passes it on; invalid data is a 400 naming the field and changes nothing', async function () {
      const { runId, slug } = await start(modify);
      const approval = await pending(runId);
      const bad = await decide(stack.apiKey, approval.id, { decision: 'continue', input: { limit: 0 } });
      expect(bad.status).to.equal(400);
      expect(bad.body.error?.field).to.equal('input.limit');
      const extra = await decide(stack.apiKey, approval.id, { decision: 'continue', input: { limit: 3, other: 1 } });
      expect(extra.status).to.equal(400);
      expect(extra.body.error?.field).to.equal('input.other');
      const still = await api<ApprovalView>(stack, 'GET', `/v1/approvals/${approval.id}`);
      expect(still.body.status).to.equal('pending');
      expect(still.body.responses).to.deep.equal([]);

      const ok = await decide(stack.apiKey, approval.id, { decision: 'continue', input: { limit: 7 }, comment: 'cap at 7' });
      expect(ok.status).to.equal(200);
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('completed');
      expect(run.output).to.deep.equal({ finished: `${slug}-finish-7` });
      const review = run.steps.find((s) => s.id === 'review');
      expect(review?.output).to.include({ decision: 'continue', comment: 'cap at 7' });
      expect((review?.output as { data: unknown }).data).to.deep.equal({ limit: 7 });
    });

    it('retry loops twice (the second with modified input), then continue', async function () {
      const { runId, slug } = await start(['decisions: [continue, retry, abort]', 'retryStep: prepare', 'modify: { type: object }']);
      const first = await pending(runId, 1);
      expect((await decide(stack.apiKey, first.id, { decision: 'retry' })).status).to.equal(200);
      const second = await pending(runId, 2);
      expect(second.id).not.to.equal(first.id);
      expect(second.prompt).to.equal(`Check ${slug}-prepare`);
      const custom = { label: `${slug}-edited`, delayMs: 1 };
      expect((await decide(stack.apiKey, second.id, { decision: 'retry', input: custom })).status).to.equal(200);
      const third = await pending(runId, 3);
      expect(third.prompt).to.equal(`Check ${slug}-edited`);
      expect((await decide(stack.apiKey, third.id, { decision: 'continue' })).status).to.equal(200);

      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('completed');
      expect(run.approvals.map((a) => `${a.status}:${a.decision}`)).to.deep.equal(['decided:retry', 'decided:retry', 'decided:continue']);
      expect(sleepCalls.get(`${slug}-prepare`)).to.equal(2);
      expect(sleepCalls.get(`${slug}-edited`)).to.equal(1);
      const events = await runEvents(stack, runId);
      expect(events.filter((e) => e.type === 'checkpoint.requested')).to.have.length(3);
      expect(events.filter((e) => e.type === 'step.completed' && e.stepId === 'finish')).to.have.length(1);
    });

    it('abort cancels the run with the reason; a decision the checkpoint does not offer is refused', async function () {
      const { runId, slug } = await start(['decisions: [continue, abort]']);
      const approval = await pending(runId);
      const retry = await decide(stack.apiKey, approval.id, { decision: 'retry' });
      expect(retry.status).to.equal(400);
      expect(retry.body.error?.field).to.equal('decision');
      expect((await decide(stack.apiKey, approval.id, { decision: 'abort', comment: 'wrong data' })).status).to.equal(200);
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('cancelled');
      expect(run.error?.message).to.contain('wrong data');
      expect(sleepCalls.get(`${slug}-finish-`)).to.equal(undefined);
    });
  });

  describe('approvers', function () {
    it('a quorum of 2 counts distinct approvers only; non-approvers are refused', async function () {
      const alice = await createKey('user:alice', ['finance']);
      const bob = await createKey('user:bob', ['finance']);
      const carol = await createKey('user:carol', ['sales']);
      const { runId } = await start(['approvers: [{ role: finance }]', 'required: 2']);
      const approval = await pending(runId);

      const first = await decide(alice, approval.id, { decision: 'continue', comment: 'ok by me' });
      expect(first.status).to.equal(202);
      expect(first.body).to.include({ status: 'pending', continues: 1, required: 2 });
      const again = await decide(alice, approval.id, { decision: 'continue' });
      expect(again.status).to.equal(409);
      expect((await decide(carol, approval.id, { decision: 'continue' })).status).to.equal(403);
      const view = await api<ApprovalView>(stack, 'GET', `/v1/approvals/${approval.id}`);
      expect(view.body.status).to.equal('pending');

      const second = await decide(bob, approval.id, { decision: 'continue' });
      expect(second.status).to.equal(200);
      expect(second.body).to.include({ status: 'decided', decision: 'continue', decidedBy: 'user:bob', continues: 2 });
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('completed');
      const history = (run.approvals[0] as unknown as ApprovalView).responses ?? [];
      expect(history.map((r) => `${r.approver}/${r.via}/${r.decision}`)).to.deep.equal([
        'user:alice/api-key/continue',
        'user:bob/api-key/continue',
      ]);
      expect(history[0]?.comment).to.equal('ok by me');
      const events = await runEvents(stack, runId);
      expect(events.find((e) => e.type === 'checkpoint.responded')?.data).to.include({ approver: 'user:alice', continues: 1, required: 2 });
      expect(events.find((e) => e.type === 'checkpoint.resolved')?.data).to.include({ decidedBy: 'user:bob', via: 'api-key' });
    });

    /** An approver's own links, fetched with its own key. */
    const links = (key: string, approvalId: string) => api<ApprovalView>(as(key), 'GET', `/v1/approvals/${approvalId}/links`);

    it('selfApproval: false refuses the identity that started the run, whatever credential it uses', async function () {
      const dana = await createKey('user:dana', ['ops']);
      const erin = await createKey('user:erin', ['ops']);
      const { runId } = await start(['approvers: [{ role: ops }]', 'selfApproval: false'], dana);
      const approval = await pending(runId);
      // The starter's own webhook carries no link (it would hold the role:ops link otherwise) …
      const sent = await notice(approval.id);
      expect(sent.decideUrl).to.equal(null);
      expect(sent.decideUrls).to.deep.equal([]);
      // … it cannot fetch one with its key, nor decide with its key.
      expect((await links(dana, approval.id)).status).to.equal(403);
      const self = await decide(dana, approval.id, { decision: 'continue' });
      expect(self.status).to.equal(403);
      expect((await api<ApprovalView>(stack, 'GET', `/v1/approvals/${approval.id}`)).body.responses).to.deep.equal([]);
      // Another holder of the role fetches its link with its own key and decides through it.
      const erinLinks = await links(erin, approval.id);
      expect(erinLinks.status).to.equal(200);
      expect(erinLinks.body.decideUrls?.map((u) => u.approver)).to.deep.equal(['role:ops']);
      expect((await postToken(erinLinks.body.decideUrl ?? '', { decision: 'continue' })).status).to.equal(200);
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('completed');
      expect((run.approvals[0] as unknown as ApprovalView).decidedBy).to.equal('role:ops');
      // No webhook of the run ever carried a link.
      expect(JSON.stringify(receiver.webhooks.filter((w) => w.data.runId === runId))).not.to.contain('token=');
    });

    it("the run's webhook carries only the links the starter holds; other approvers fetch theirs", async function () {
      const hank = await createKey('user:hank', ['qa']);
      const ivy = await createKey('user:ivy');
      const { runId } = await start(['approvers: [{ role: qa }, { user: ivy }]'], hank);
      const approval = await pending(runId);
      const sent = await notice(approval.id);
      expect(sent.decideUrls?.map((u) => u.approver)).to.deep.equal(['role:qa']);
      const ivyLinks = await links(ivy, approval.id);
      expect(ivyLinks.body.decideUrls?.map((u) => u.approver)).to.deep.equal(['user:ivy']);
      expect((await postToken(ivyLinks.body.decideUrl ?? '', { decision: 'continue' })).status).to.equal(200);
      expect((await waitForRun(stack, runId)).status).to.equal('completed');
    });

    it('one decide link per approver, each bound to its approver and given only to it', async function () {
      const frank = await createKey('user:frank');
      const gina = await createKey('user:gina');
      const { runId } = await start(['approvers: [{ user: frank }, { user: gina }]', 'required: 2']);
      const approval = await pending(runId);
      // The starter (the stack's service key) is neither approver: its webhook carries no links.
      const sent = await notice(approval.id);
      expect(sent.decideUrls).to.deep.equal([]);
      expect((await links(stack.apiKey, approval.id)).status).to.equal(403);
      const frankLinks = (await links(frank, approval.id)).body.decideUrls ?? [];
      const ginaLinks = (await links(gina, approval.id)).body.decideUrls ?? [];
      expect(frankLinks.map((u) => u.approver)).to.deep.equal(['user:frank']);
      expect(ginaLinks.map((u) => u.approver)).to.deep.equal(['user:gina']);
      const frankUrl = frankLinks[0]?.url ?? '';
      const ginaUrl = ginaLinks[0]?.url ?? '';
      expect((await postToken(frankUrl, { decision: 'continue' })).status).to.equal(202);
      // Frank's link again: spent, and it cannot stand in for Gina.
      expect((await postToken(frankUrl, { decision: 'continue' })).status).to.equal(409);
      expect((await api<ApprovalView>(stack, 'GET', `/v1/approvals/${approval.id}`)).body.status).to.equal('pending');
      expect((await postToken(ginaUrl, { decision: 'continue' })).status).to.equal(200);
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('completed');
      const history = (run.approvals[0] as unknown as ApprovalView).responses ?? [];
      expect(history.map((r) => `${r.approver}/${r.via}`)).to.deep.equal(['user:frank/token', 'user:gina/token']);
    });
  });

  describe('races', function () {
    it('20 concurrent decisions on one approval: exactly one wins, the others get 409 with the standing decision', async function () {
      const keys = await Promise.all(Array.from({ length: 20 }, (_, i) => createKey(`user:racer${i}-${uniqueSlug('k')}`)));
      const { runId } = await start([]);
      const approval = await pending(runId);
      const results = await Promise.all(
        keys.map((key, i) => decide(key, approval.id, { decision: i % 2 === 0 ? 'continue' : 'abort' })),
      );
      const winners = results.filter((r) => r.status === 200);
      expect(winners).to.have.length(1);
      const winner = winners[0]!.body;
      for (const loser of results.filter((r) => r.status !== 200)) {
        expect(loser.status).to.equal(409);
        expect(loser.body.error?.details).to.include({ status: 'decided', decision: winner.decision, decidedBy: winner.decidedBy });
      }
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal(winner.decision === 'continue' ? 'completed' : 'cancelled');
      const view = await api<ApprovalView>(stack, 'GET', `/v1/approvals/${approval.id}`);
      expect(view.body.responses).to.have.length(1);
      const events = await runEvents(stack, runId);
      expect(events.filter((e) => e.type === 'checkpoint.resolved')).to.have.length(1);
    });
  });

  describe('deadlines', function () {
    it('onTimeout: abort expires the approval, cancels the run, and a late decision gets 410', async function () {
      const { runId } = await start(['timeout: 2s', 'onTimeout: abort']);
      const approval = await pending(runId);
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('cancelled');
      expect(run.error?.message).to.contain('deadline');
      expect(run.approvals[0]).to.include({ status: 'expired', decision: 'abort' });
      const late = await decide(stack.apiKey, approval.id, { decision: 'continue' });
      expect(late.status).to.equal(410);
      const sent = await notice(approval.id);
      expect((await postToken(sent.decideUrl ?? '', { decision: 'continue' })).status).to.equal(410);
      const types = (await runEvents(stack, runId)).map((e) => e.type);
      expect(types).to.include('checkpoint.expired');
      expect(types).not.to.include('checkpoint.resolved');
      await waitFor(
        async () => (receiver.webhooks.some((w) => w.type === 'checkpoint.expired' && w.data.runId === runId) ? true : undefined),
        10_000,
        'checkpoint.expired webhook',
      );
    });

    it('onTimeout: continue completes the checkpoint as system:timeout', async function () {
      const { runId } = await start(['timeout: 2s', 'onTimeout: continue']);
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('completed');
      expect(run.steps.find((s) => s.id === 'review')?.output).to.include({ decision: 'continue', decidedBy: 'system:timeout' });
    });

    it('onTimeout: retry re-runs retryStep and asks again', async function () {
      const { runId, slug } = await start(['timeout: 2s', 'onTimeout: retry', 'decisions: [continue, retry, abort]', 'retryStep: prepare']);
      const second = await pending(runId, 2);
      expect(sleepCalls.get(`${slug}-prepare`)).to.equal(2);
      expect((await decide(stack.apiKey, second.id, { decision: 'continue' })).status).to.equal(200);
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('completed');
      expect(run.approvals.map((a) => a.status)).to.deep.equal(['expired', 'decided']);
    });

    it('reminds before the deadline, with the decide links', async function () {
      const { runId } = await start(['timeout: 3s', 'remind: [2s]']);
      const approval = await pending(runId);
      const reminder = await waitFor(
        async () => receiver.webhooks.find((w) => w.type === 'checkpoint.reminded' && w.data.runId === runId),
        10_000,
        'checkpoint.reminded webhook',
      );
      const remindedApproval = reminder.data.approval as ApprovalView;
      expect(remindedApproval.id).to.equal(approval.id);
      expect(remindedApproval.decideUrl).to.match(/\?token=/);
      expect(reminder.data.remainingMs).to.be.within(0, 2050); // 2 s before a 3 s deadline, give or take rounding
      expect((await postToken(remindedApproval.decideUrl ?? '', { decision: 'continue' })).status).to.equal(200);
      expect((await waitForRun(stack, runId)).status).to.equal('completed');
    });
  });

  describe('integrations', function () {
    it('accepts a decision signed per Standard Webhooks, and refuses a replay, a bad signature and a stale timestamp', async function () {
      const created = await api<{ id: string; secret: string }>(stack, 'POST', '/v1/integrations', { name: uniqueSlug('chatops'), roles: ['finance'] });
      expect(created.status).to.equal(201);
      const { id: integrationId, secret } = created.body;
      const alice = await createKey(`user:${uniqueSlug('alice')}`, ['finance']);
      const { runId } = await start(['approvers: [{ role: finance }]', 'required: 2']);
      const approval = await pending(runId);
      const signer = new Webhook(secret);
      const send = (messageId: string, body: string, at = new Date(), signature?: string) =>
        fetch(`${stack.baseUrl}/v1/approvals/${approval.id}/decision`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'baton-integration': integrationId,
            'webhook-id': messageId,
            'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
            'webhook-signature': signature ?? signer.sign(messageId, at, body),
          },
          body,
        });
      const body = JSON.stringify({ decision: 'continue', comment: 'approved in chat' });
      const now = new Date();
      const first = await send('msg_1', body, now);
      expect(first.status).to.equal(202);
      expect((await send('msg_1', body, now)).status).to.equal(409); // replay
      const wrongKey = new Webhook(`whsec_${Buffer.from('another-secret-another-secret-00').toString('base64')}`);
      expect((await send('msg_2', body, now, wrongKey.sign('msg_2', now, body))).status).to.equal(401);
      const stale = new Date(Date.now() - 10 * 60_000);
      expect((await send('msg_3', body, stale)).status).to.equal(401);
      expect((await api<ApprovalView>(stack, 'GET', `/v1/approvals/${approval.id}`)).body.status).to.equal('pending');

      expect((await decide(alice, approval.id, { decision: 'continue' })).status).to.equal(200);
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('completed');
      const history = (run.approvals[0] as unknown as ApprovalView).responses ?? [];
      expect(history[0]).to.include({ via: 'integration', decision: 'continue', comment: 'approved in chat' });
      expect(history[0]?.approver).to.match(/^integration:chatops-/);
    });
  });

  describe('inbox', function () {
    it('lists pending approvals with run, step, prompt, approvers, age and deadline, paginated', async function () {
      const runs = await Promise.all([start(['approvers: [{ role: finance }]']), start([]), start([])]);
      const approvals = await Promise.all(runs.map((r) => pending(r.runId)));
      const item = approvals[0]!;
      expect(item).to.include({ stepId: 'review', status: 'pending' });
      expect(item.prompt).to.match(/^Check /);
      expect(item.approvers).to.deep.equal([{ role: 'finance' }]);
      expect(item.ageMs).to.be.a('number');
      expect(Date.parse(item.expiresAt)).to.be.greaterThan(Date.now());

      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { body: { items: ApprovalView[]; nextCursor: string | null } } = await api(
          stack,
          'GET',
          `/v1/approvals?status=pending&limit=1${cursor ? `&cursor=${cursor}` : ''}`,
        );
        expect(page.body.items.length).to.be.at.most(1);
        seen.push(...page.body.items.map((a) => a.id));
        cursor = page.body.nextCursor;
      } while (cursor);
      expect(new Set(seen).size).to.equal(seen.length);
      expect(seen).to.include.members(approvals.map((a) => a.id));

      const bad = await api<{ error: { field: string } }>(stack, 'GET', '/v1/approvals?cursor=nonsense');
      expect(bad.status).to.equal(400);
      expect(bad.body.error.field).to.equal('cursor');
      // The first needs the finance role, which the default key lacks: refused, still pending.
      expect((await decide(stack.apiKey, item.id, { decision: 'abort' })).status).to.equal(403);
      for (const a of approvals.slice(1)) expect((await decide(stack.apiKey, a.id, { decision: 'abort' })).status).to.equal(200);
      const decided = await api<{ items: ApprovalView[] }>(stack, 'GET', '/v1/approvals?status=decided&limit=200');
      expect(decided.body.items.map((a) => a.id)).to.include.members(approvals.slice(1).map((a) => a.id));
      expect(decided.body.items.map((a) => a.id)).not.to.include(item.id);
      const finance = await createKey(`user:${uniqueSlug('fin')}`, ['finance']);
      expect((await decide(finance, item.id, { decision: 'abort' })).status).to.equal(200);
    });
  });
});
