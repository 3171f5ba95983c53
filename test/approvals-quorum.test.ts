/**
 * Issue 12 items 7 and 8 against real Redis, Postgres and HTTP: a `required: N` quorum merges the
 * continues' modified data; organization role membership gives one decide link per member; every
 * response records the identity its link was minted for, the client address and user agent; and
 * a compensation reads the output of the step it undoes.
 */
import { expect } from 'chai';
import { parseDefinition } from '../definitions/index.js';
import { api, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { approvalFlow } from './support/approval-flow.js';
import { sleepAgent, uniqueSlug } from './support/test-agents.js';

interface Response {
  approver: string;
  via: string;
  decision: string;
  data: unknown;
  clientIp: string | null;
  userAgent: string | null;
}
interface ApprovalView {
  id: string;
  runId: string;
  status: string;
  decidedBy: string | null;
  data: unknown;
  decideUrls?: Array<{ approver: string; role?: string; url: string }>;
  responses?: Response[];
  error?: { code: string; field?: string };
}

describe('approvals: quorum data, role members, recorded identities; compensations', function () {
  this.timeout(60_000);
  let stack: Stack;
  const as = (key: string) => ({ baseUrl: stack.baseUrl, apiKey: key });

  before(async function () {
    stack = await startStack({ agents: [sleepAgent] });
  });
  after(async function () {
    await stack?.close();
  });

  async function createKey(subject: string, roles: string[] = [], scopes = ['runs:read', 'approvals:decide']): Promise<string> {
    const res = await api<{ key: string }>(stack, 'POST', '/v1/api-keys', { name: subject, subject, scopes, roles });
    expect(res.status).to.equal(201);
    return res.body.key;
  }

  async function start(reviewLines: string[]): Promise<{ runId: string; slug: string }> {
    const slug = uniqueSlug('quorum');
    await storeDefinition(stack, approvalFlow(slug, reviewLines, ['limit', 'note']), [sleepAgent]);
    const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
    expect(res.status).to.equal(202);
    return { runId: res.body.id, slug };
  }

  async function pending(runId: string): Promise<ApprovalView> {
    return waitFor(
      async () => (await api<{ items: ApprovalView[] }>(stack, 'GET', '/v1/approvals?status=pending&limit=200')).body.items.find((a) => a.runId === runId),
      20_000,
      `pending approval of ${runId}`,
    );
  }

  const decide = (key: string, approvalId: string, body: Record<string, unknown>) =>
    api<ApprovalView>(as(key), 'POST', `/v1/approvals/${approvalId}/decision`, body);

  const postLink = async (url: string, body: Record<string, unknown>, headers: Record<string, string> = {}) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as ApprovalView };
  };

  describe('required: N merges the continues’ modified data', function () {
    const modify = 'modify: { type: object, properties: { limit: { type: integer, minimum: 1, maximum: 1000 }, note: { type: string } }, additionalProperties: false }';

    it('later wins per top-level field; the merge is what the step decides and passes on', async function () {
      const ann = await createKey(`user:ann-${uniqueSlug('u')}`);
      const ben = await createKey(`user:ben-${uniqueSlug('u')}`);
      const { runId, slug } = await start(['approvers: []', 'required: 2', modify]);
      const approval = await pending(runId);
      // Each response is checked against `modify` on its own.
      const above = await decide(ann, approval.id, { decision: 'continue', input: { limit: 5000 } });
      expect(above.status).to.equal(400);
      expect(above.body.error?.field).to.equal('input.limit');
      expect((await decide(ann, approval.id, { decision: 'continue', input: { limit: 500, note: 'ann' } })).status).to.equal(202);
      const second = await decide(ben, approval.id, { decision: 'continue', input: { note: 'ben' } });
      expect(second.status).to.equal(200);
      expect(second.body.data).to.deep.equal({ limit: 500, note: 'ben' });
      const run = await waitForRun(stack, runId);
      expect(run.status).to.equal('completed');
      expect(run.output).to.deep.equal({ finished: `${slug}-finish-500-ben` });
      const review = run.steps.find((s) => s.id === 'review')?.output as { data: unknown };
      expect(review.data).to.deep.equal({ limit: 500, note: 'ben' });
      const view = await api<ApprovalView>(stack, 'GET', `/v1/approvals/${approval.id}`);
      expect(view.body.responses?.map((r) => r.data)).to.deep.equal([{ limit: 500, note: 'ann' }, { note: 'ben' }]);
    });

    it('a merge that no longer matches modify is a 400 naming the field, and the response is not counted', async function () {
      const ann = await createKey(`user:ann-${uniqueSlug('u')}`);
      const ben = await createKey(`user:ben-${uniqueSlug('u')}`);
      const { runId, slug } = await start(['required: 2', 'modify: { type: object, maxProperties: 1 }']);
      const approval = await pending(runId);
      expect((await decide(ann, approval.id, { decision: 'continue', input: { limit: 3 } })).status).to.equal(202);
      const merged = await decide(ben, approval.id, { decision: 'continue', input: { note: 'two fields now' } });
      expect(merged.status).to.equal(400);
      expect(merged.body.error?.field).to.match(/^input/);
      const still = await api<ApprovalView>(stack, 'GET', `/v1/approvals/${approval.id}`);
      expect(still.body.status).to.equal('pending');
      expect(still.body.responses).to.have.length(1);
      // Without data, the earlier modification stands and is passed on.
      expect((await decide(ben, approval.id, { decision: 'continue' })).status).to.equal(200);
      const run = await waitForRun(stack, runId);
      expect(run.output).to.deep.equal({ finished: `${slug}-finish-3-` });
    });
  });

  describe('role membership', function () {
    it('PUT/GET /v1/roles: replaces the members, validates names, 404 for a role never set, admin only', async function () {
      const role = `r${uniqueSlug('x').replace(/[^a-z0-9]/g, '').slice(0, 20)}`;
      expect((await api(stack, 'GET', `/v1/roles/${role}`)).status).to.equal(404);
      const put = await api<{ role: string; members: string[]; updatedAt: string }>(stack, 'PUT', `/v1/roles/${role}`, { members: ['user:a', 'service:b', 'user:a'] });
      expect(put.status).to.equal(200);
      expect(put.body).to.include({ role });
      expect(put.body.members).to.deep.equal(['user:a', 'service:b']);
      expect(Number.isNaN(Date.parse(put.body.updatedAt))).to.equal(false);
      const replaced = await api<{ members: string[] }>(stack, 'PUT', `/v1/roles/${role}`, { members: ['user:c'] });
      expect(replaced.body.members).to.deep.equal(['user:c']);
      expect((await api<{ members: string[] }>(stack, 'GET', `/v1/roles/${role}`)).body.members).to.deep.equal(['user:c']);
      const list = await api<{ items: Array<{ role: string; members: string[] }> }>(stack, 'GET', '/v1/roles');
      expect(list.body.items.find((r) => r.role === role)?.members).to.deep.equal(['user:c']);

      const badMember = await api<{ error: { code: string; field: string } }>(stack, 'PUT', `/v1/roles/${role}`, { members: ['alice'] });
      expect(badMember.status).to.equal(400);
      expect(badMember.body.error.field).to.equal('members.0');
      const badName = await api<{ error: { field: string } }>(stack, 'PUT', '/v1/roles/Not%20A%20Role', { members: [] });
      expect(badName.status).to.equal(400);
      expect(badName.body.error.field).to.equal('role');
      const reader = await createKey(`user:reader-${uniqueSlug('u')}`, [], ['runs:read']);
      expect((await api(as(reader), 'PUT', `/v1/roles/${role}`, { members: [] })).status).to.equal(403);
      expect((await api<{ members: string[] }>(stack, 'GET', `/v1/roles/${role}`)).body.members).to.deep.equal(['user:c']);
    });

    it('a role quorum gets one link per member; each decides as its member with client address and user agent', async function () {
      const role = `r${uniqueSlug('x').replace(/[^a-z0-9]/g, '').slice(0, 20)}`;
      const mia = `user:mia-${uniqueSlug('u')}`;
      const noa = `user:noa-${uniqueSlug('u')}`;
      expect((await api(stack, 'PUT', `/v1/roles/${role}`, { members: [mia, noa] })).status).to.equal(200);
      // Neither key holds the role itself: membership alone makes them approvers.
      const miaKey = await createKey(mia);
      const noaKey = await createKey(noa);
      const { runId } = await start([`approvers: [{ role: ${role} }]`, 'required: 2']);
      const approval = await pending(runId);
      const miaLinks = (await api<ApprovalView>(as(miaKey), 'GET', `/v1/approvals/${approval.id}/links`)).body.decideUrls ?? [];
      const noaLinks = (await api<ApprovalView>(as(noaKey), 'GET', `/v1/approvals/${approval.id}/links`)).body.decideUrls ?? [];
      expect(miaLinks.map((l) => [l.approver, l.role])).to.deep.equal([[mia, role]]);
      expect(noaLinks.map((l) => [l.approver, l.role])).to.deep.equal([[noa, role]]);

      const first = await postLink(miaLinks[0]!.url, { decision: 'continue' }, { 'user-agent': 'mia-browser/1.0', 'x-forwarded-for': '203.0.113.7' });
      expect(first.status).to.equal(202);
      const second = await postLink(noaLinks[0]!.url, { decision: 'continue' }, { 'user-agent': 'noa-mail/2.0' });
      expect(second.status).to.equal(200);
      expect(second.body.decidedBy).to.equal(noa);
      expect((await waitForRun(stack, runId)).status).to.equal('completed');

      const view = await api<ApprovalView>(stack, 'GET', `/v1/approvals/${approval.id}`);
      const responses = view.body.responses ?? [];
      expect(responses.map((r) => [r.approver, r.via, r.userAgent])).to.deep.equal([
        [mia, 'token', 'mia-browser/1.0'],
        [noa, 'token', 'noa-mail/2.0'],
      ]);
      expect(responses[0]?.clientIp).to.equal('203.0.113.7');
      // Without a forwarded address, the peer's own (the test runs on loopback).
      expect(responses[1]?.clientIp).to.match(/127\.0\.0\.1|::1/);
      const manifest = await api<{ approvals: ApprovalView[] }>(stack, 'GET', `/v1/runs/${runId}/manifest`);
      expect(manifest.body.approvals[0]?.responses?.map((r) => [r.approver, r.clientIp, r.userAgent])).to.deep.equal(responses.map((r) => [r.approver, r.clientIp, r.userAgent]));
    });

    it('an API key decides as its subject, a role member through membership; a non-member is refused', async function () {
      const role = `r${uniqueSlug('x').replace(/[^a-z0-9]/g, '').slice(0, 20)}`;
      const oli = `user:oli-${uniqueSlug('u')}`;
      expect((await api(stack, 'PUT', `/v1/roles/${role}`, { members: [oli] })).status).to.equal(200);
      const oliKey = await createKey(oli);
      const outsider = await createKey(`user:out-${uniqueSlug('u')}`);
      const { runId } = await start([`approvers: [{ role: ${role} }]`]);
      const approval = await pending(runId);
      expect((await decide(outsider, approval.id, { decision: 'continue' })).status).to.equal(403);
      const ok = await api<ApprovalView>(as(oliKey), 'POST', `/v1/approvals/${approval.id}/decision`, { decision: 'continue' }, { 'user-agent': 'cli/3' });
      expect(ok.status).to.equal(200);
      const view = await api<ApprovalView>(stack, 'GET', `/v1/approvals/${approval.id}`);
      expect(view.body.responses?.map((r) => [r.approver, r.via, r.userAgent])).to.deep.equal([[oli, 'api-key', 'cli/3']]);
    });

    it('a checkpoint without approvers: its link decides as link:<approval id>, never anyone', async function () {
      const { runId } = await start([]);
      const approval = await pending(runId);
      const links = (await api<ApprovalView>(stack, 'GET', `/v1/approvals/${approval.id}/links`)).body.decideUrls ?? [];
      expect(links.map((l) => l.approver)).to.deep.equal([`link:${approval.id}`]);
      const decided = await postLink(links[0]!.url, { decision: 'continue' }, { 'user-agent': 'chat-bot/9' });
      expect(decided.status).to.equal(200);
      expect(decided.body.decidedBy).to.equal(`link:${approval.id}`);
      const view = await api<ApprovalView>(stack, 'GET', `/v1/approvals/${approval.id}`);
      expect(view.body.responses?.map((r) => [r.approver, r.userAgent])).to.deep.equal([[`link:${approval.id}`, 'chat-bot/9']]);
    });
  });

  describe('compensations read what they undo', function () {
    it('cancel_booking receives the bookingId of the booking it compensates', async function () {
      const slug = uniqueSlug('saga');
      await storeDefinition(
        stack,
        `
slug: ${slug}
version: 1
name: ${slug}
input: { type: object }
steps:
  - id: book
    type: function
    compensate: cancel_booking
    code: "function main() { return { bookingId: 'bk-' + 42 } }"
  - id: pay
    type: checkpoint
    needs: [book]
    prompt: "Pay for the booking?"
  - id: cancel_booking
    type: function
    code: "function main(i) { return { cancelled: i.bookingId, same: i.viaSteps, undid: i.undid } }"
    with:
      bookingId: \${{ compensated.output.bookingId }}
      viaSteps: \${{ steps.book.output.bookingId }}
      undid: \${{ compensated.id }}
`,
      );
      const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
      expect(res.status).to.equal(202);
      const approval = await pending(res.body.id);
      // The later step fails: the payment checkpoint is aborted, so the booking is compensated.
      expect((await api(stack, 'POST', `/v1/approvals/${approval.id}/decision`, { decision: 'abort', comment: 'declined' })).status).to.equal(200);
      const run = await waitForRun(stack, res.body.id);
      expect(run.status).to.equal('cancelled');
      const cancel = run.steps.find((s) => s.id === 'cancel_booking');
      expect(cancel?.status).to.equal('completed');
      expect(cancel?.output).to.deep.equal({ cancelled: 'bk-42', same: 'bk-42', undid: 'book' });
      const manifest = await api<{ steps: Array<{ id: string; attempts: Array<{ input: unknown }> }> }>(stack, 'GET', `/v1/runs/${res.body.id}/manifest`);
      expect(manifest.body.steps.find((s) => s.id === 'cancel_booking')?.attempts[0]?.input).to.deep.equal({ bookingId: 'bk-42', viaSteps: 'bk-42', undid: 'book' });
    });

    it('refuses compensated outside a compensation step, and steps.<id> a compensation cannot have seen', function () {
      const base = (extra: string) => `
slug: saga-check
version: 1
name: saga-check
input: { type: object }
steps:
  - id: book
    type: function
    compensate: undo
    code: "function main() { return {} }"
  - id: other
    type: function
    code: "function main() { return {} }"
${extra}`;
      expect(() =>
        parseDefinition(base(`  - id: undo\n    type: function\n    code: "function main(i) { return i }"\n    with: { id: "\${{ compensated.output.x }}" }\n  - id: later\n    type: function\n    needs: [book]\n    code: "function main(i) { return i }"\n    with: { id: "\${{ compensated.output.x }}" }\n`), { file: 'saga.yaml', agents: new Map() }),
      ).to.throw(/later: with\.id reads compensated/);
      expect(() =>
        parseDefinition(base(`  - id: undo\n    type: function\n    code: "function main(i) { return i }"\n    with: { id: "\${{ steps.other.output }}" }\n`), { file: 'saga.yaml', agents: new Map() }),
      ).to.throw(/references steps\.other, which is not among its needs/);
      expect(parseDefinition(base(`  - id: undo\n    type: function\n    code: "function main(i) { return i }"\n    with: { id: "\${{ steps.book.output }}", c: "\${{ compensated.output }}" }\n`), { file: 'saga.yaml', agents: new Map() }).slug).to.equal('saga-check');
    });
  });
});
