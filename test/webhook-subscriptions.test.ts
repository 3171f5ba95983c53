/**
 * Webhook subscriptions (issue 9 item 4, issue 8 item 5) against real Redis, Postgres, workers and
 * local HTTP receivers that verify every message with the official `standardwebhooks` library:
 * CRUD and validation, delivery of matching events in sequence order per run (for subscriptions
 * and the per-run `webhookUrl`), the delivery log, retries after failures, redelivery, and the
 * outbox sweep.
 */
import { expect } from 'chai';
import { eq } from 'drizzle-orm';
import { webhookDeliveries } from '../db/index.js';
import { reconcileAll } from '../services/engine/index.js';
import type { WebhookDeliveryView } from '../services/store/index.js';
import { otherOrganization } from './support/organizations.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { api, runEvents, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { sleepAgent, uniqueSlug } from './support/test-agents.js';

interface Subscription {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  enabled: boolean;
  secret?: string;
}

type Delivery = WebhookDeliveryView;

describe('webhook subscriptions (issue 9)', function () {
  this.timeout(60_000);
  let stack: Stack;
  const receivers: Receiver[] = [];

  before(async function () {
    stack = await startStack({ agents: [sleepAgent] });
  });
  after(async function () {
    await Promise.all(receivers.map((r) => r.close()));
    await stack?.close();
  });

  /** Create a subscription, then point it at a receiver that verifies with its secret. */
  async function subscribe(events: string[]): Promise<{ subscription: Subscription; receiver: Receiver }> {
    const created = await api<Subscription>(stack, 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/unset', events, description: 'test' });
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    expect(created.body.secret).to.match(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const receiver = await startReceiver(created.body.secret ?? '');
    receivers.push(receiver);
    const patched = await api<Subscription>(stack, 'PATCH', `/v1/webhooks/${created.body.id}`, { url: `${receiver.url}/webhooks` });
    expect(patched.status).to.equal(200);
    expect(patched.body).not.to.have.property('secret');
    return { subscription: patched.body, receiver };
  }

  /** A run with six parallel steps between two others: about thirty events. */
  async function startWideRun(webhookUrl?: string): Promise<string> {
    const slug = uniqueSlug('wh');
    const parallel = [1, 2, 3, 4, 5, 6]
      .map((i) => `  - id: p${i}\n    agent: test-sleep\n    needs: [first]\n    with: { label: "${slug}-p${i}", delayMs: ${i * 7} }\n`)
      .join('');
    await storeDefinition(
      stack,
      `slug: ${slug}\nversion: 1\nname: ${slug}\ninput: { type: object }\nsteps:\n  - id: first\n    agent: test-sleep\n    with: { label: "${slug}-first", delayMs: 1 }\n${parallel}  - id: last\n    agent: test-sleep\n    needs: [p1, p2, p3, p4, p5, p6]\n    with: { label: "${slug}-last", delayMs: 1 }\n`,
      [sleepAgent],
    );
    const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {}, ...(webhookUrl ? { webhookUrl } : {}) });
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
    return res.body.id;
  }

  const seqsOf = (receiver: Receiver, runId: string) =>
    receiver.webhooks.filter((w) => w.data.runId === runId).map((w) => w.data.seq as number);

  it('creates, lists, reads, updates and deletes subscriptions, refusing bad input by field', async function () {
    const bad = await api<{ error: { field: string } }>(stack, 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:1/x', events: ['run.*', 'step.finished'] });
    expect(bad.status).to.equal(400);
    expect(bad.body.error.field).to.equal('events.1');
    const noUrl = await api<{ error: { field: string } }>(stack, 'POST', '/v1/webhooks', { url: 'ftp://x', events: ['*'] });
    expect(noUrl.body.error.field).to.equal('url');

    const created = await api<Subscription>(stack, 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:1/x', events: ['checkpoint.*'] });
    expect(created.status).to.equal(201);
    const { id } = created.body;
    const list = await api<{ items: Subscription[] }>(stack, 'GET', '/v1/webhooks');
    expect(list.body.items.map((s) => s.id)).to.include(id);
    expect(JSON.stringify(list.body)).not.to.contain('whsec_');
    const updated = await api<Subscription>(stack, 'PATCH', `/v1/webhooks/${id}`, { enabled: false, events: ['run.completed'], description: 'off' });
    expect(updated.body).to.include({ enabled: false, description: 'off' });
    expect(updated.body.events).to.deep.equal(['run.completed']);

    const other = await otherOrganization(stack);
    expect((await api(other.client, 'GET', `/v1/webhooks/${id}`)).status).to.equal(404);
    expect((await api(other.client, 'DELETE', `/v1/webhooks/${id}`)).status).to.equal(404);
    expect((await api(stack, 'DELETE', `/v1/webhooks/${id}`)).status).to.equal(204);
    expect((await api(stack, 'GET', `/v1/webhooks/${id}`)).status).to.equal(404);
  });

  it('delivers matching events signed with the subscription secret, in sequence order per run', async function () {
    const all = await subscribe(['*']);
    const runOnly = await subscribe(['run.*']);
    const perRun = await startReceiver(stack.config.auth.webhookSecret);
    receivers.push(perRun);
    const runIds = await Promise.all([startWideRun(`${perRun.url}/webhooks`), startWideRun(), startWideRun()]);
    for (const runId of runIds) expect((await waitForRun(stack, runId)).status).to.equal('completed');

    for (const runId of runIds) {
      const events = await runEvents(stack, runId);
      expect(events.length).to.be.greaterThan(20);
      await waitFor(async () => (seqsOf(all.receiver, runId).length >= events.length ? true : undefined), 20_000, `all events of ${runId}`);
      // Every event exactly once, in sequence order (the order they arrived in).
      expect(seqsOf(all.receiver, runId)).to.deep.equal(events.map((e) => e.seq));
      const runEventsOnly = events.filter((e) => e.type.startsWith('run.'));
      await waitFor(async () => (seqsOf(runOnly.receiver, runId).length >= runEventsOnly.length ? true : undefined), 20_000, 'run events');
      expect(seqsOf(runOnly.receiver, runId)).to.deep.equal(runEventsOnly.map((e) => e.seq));
    }
    expect(all.receiver.rejected + runOnly.receiver.rejected).to.equal(0);

    // The per-run webhookUrl keeps working, signed with BATON_WEBHOOK_SECRET, in order too.
    const perRunEvents = await runEvents(stack, runIds[0] ?? '');
    await waitFor(async () => (seqsOf(perRun, runIds[0] ?? '').length >= perRunEvents.length ? true : undefined), 20_000, 'per-run webhook');
    expect(seqsOf(perRun, runIds[0] ?? '')).to.deep.equal(perRunEvents.map((e) => e.seq));
    expect(seqsOf(perRun, runIds[1] ?? '')).to.deep.equal([]);

    // The delivery log: one delivered entry per event, with response code and latency.
    const log = await api<{ items: Delivery[] }>(stack, 'GET', `/v1/webhooks/${all.subscription.id}/deliveries?runId=${runIds[1]}&limit=500`);
    expect(log.status).to.equal(200);
    const events1 = await runEvents(stack, runIds[1] ?? '');
    expect(log.body.items).to.have.length(events1.length);
    for (const d of log.body.items) {
      expect(d).to.include({ status: 'delivered', attempts: 1, responseStatus: 204 });
      expect(d.latencyMs).to.be.a('number');
    }
    expect(log.body.items.map((d) => d.event).sort()).to.deep.equal(events1.map((e) => e.type).sort());
  });

  it('retries a failing endpoint, keeping the order, and redelivers on request', async function () {
    const { subscription, receiver } = await subscribe(['step.completed', 'run.completed']);
    receiver.failWebhooks = true;
    const runId = await startWideRun();
    expect((await waitForRun(stack, runId)).status).to.equal('completed');
    const deliveries = async () =>
      (await api<{ items: Delivery[] }>(stack, 'GET', `/v1/webhooks/${subscription.id}/deliveries?runId=${runId}`)).body.items;
    // The first delivery is retried; the ones behind it wait their turn.
    await waitFor(async () => ((await deliveries()).some((d) => d.attempts >= 2) ? true : undefined), 15_000, 'a retried delivery');
    expect(seqsOf(receiver, runId)).to.deep.equal([]);
    const waiting = await deliveries();
    expect(waiting.every((d) => d.status === 'pending')).to.equal(true);
    expect(waiting.filter((d) => d.attempts > 0)).to.have.length(1);

    receiver.failWebhooks = false;
    const expected = (await runEvents(stack, runId)).filter((e) => e.type === 'step.completed' || e.type === 'run.completed').map((e) => e.seq);
    await waitFor(async () => (seqsOf(receiver, runId).length >= expected.length ? true : undefined), 20_000, 'delivered after recovery');
    expect(seqsOf(receiver, runId)).to.deep.equal(expected);
    const done = await deliveries();
    expect(done.every((d) => d.status === 'delivered')).to.equal(true);

    const first = done.find((d) => d.seq === expected[0]);
    const again = await api<Delivery>(stack, 'POST', `/v1/webhook-deliveries/${first?.id}/redeliver`);
    expect(again.status).to.equal(202);
    expect(again.body).to.include({ status: 'pending', attempts: 0 });
    await waitFor(async () => (seqsOf(receiver, runId).length > expected.length ? true : undefined), 15_000, 'redelivered');
    expect(seqsOf(receiver, runId).at(-1)).to.equal(expected[0]);
    const other = await otherOrganization(stack);
    expect((await api(other.client, 'POST', `/v1/webhook-deliveries/${first?.id}/redeliver`)).status).to.equal(404);
  });

  it("the outbox sweep delivers a run's events after the webhooks queue lost its jobs", async function () {
    const { subscription, receiver } = await subscribe(['*']);
    receiver.failWebhooks = true;
    const runId = await startWideRun();
    expect((await waitForRun(stack, runId)).status).to.equal('completed');
    const events = await runEvents(stack, runId);
    // Every event has its delivery recorded, and the first one has failed once.
    await waitFor(
      async () => {
        const rows = await stack.deps.database.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.subscriptionId, subscription.id));
        return rows.length === events.length && rows.some((d) => d.attempts > 0) ? true : undefined;
      },
      15_000,
      'a failed attempt',
    );
    await stack.deps.queues.get('webhooks').obliterate({ force: true });
    receiver.failWebhooks = false;
    const report = await reconcileAll(stack.deps, { webhookGraceMs: 0 });
    expect(report.webhooksRequeued).to.be.at.least(events.length);
    await waitFor(async () => (seqsOf(receiver, runId).length >= events.length ? true : undefined), 20_000, 'all delivered');
    expect(seqsOf(receiver, runId)).to.deep.equal(events.map((e) => e.seq));
  });
});
