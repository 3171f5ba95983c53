/**
 * The flagship run on real data, in-process: load (postgres-agent) → kpis (function agent in
 * QuickJS) → review (checkpoint, approved through its signed decideUrl) → summary (local
 * provider) → publish (marketing-swarm, to a local receiver).
 */
import { readFile } from 'node:fs/promises';
import { expect } from 'chai';
import { parseStocksCsv, stocksCsvPath } from '../db/index.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { api, runEvents, startStack, waitFor, waitForRun, type Stack } from './support/stack.js';

describe('kpi-tracking on the seeded vega-datasets prices', function () {
  let stack: Stack;
  let receiver: Receiver;

  before(async function () {
    stack = await startStack();
    receiver = await startReceiver(stack.config.auth.webhookSecret);
  });
  after(async function () {
    await receiver?.close();
    await stack?.close();
  });

  it('computes the KPIs, waits for approval, summarizes and publishes once', async function () {
    const input = { symbols: ['AAPL', 'MSFT'], from: '2005-01-01', to: '2009-12-31', publishUrl: `${receiver.url}/publish` };
    const started = await api<{ id: string; status: string; links: Record<string, string> }>(stack, 'POST', '/v1/runs', {
      definition: 'kpi-tracking',
      input,
      webhookUrl: `${receiver.url}/webhooks`,
    });
    expect(started.status).to.equal(202);
    expect(started.body.status).to.equal('queued');
    expect(started.body.links.stream).to.equal(`/v1/runs/${started.body.id}/stream`);
    const runId = started.body.id;

    const approval = await waitFor(
      async () => receiver.webhooks.find((w) => w.type === 'checkpoint.requested')?.data.approval as Record<string, unknown> | undefined,
      20_000,
      'checkpoint webhook',
    );
    expect(approval.prompt).to.equal('Review the KPIs for AAPL, MSFT (2005-01-01 to 2009-12-31) before the summary is written.');
    expect(approval.show).to.have.keys(['AAPL', 'MSFT']);
    const decided = await fetch(String(approval.decideUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ decision: 'continue' }),
    });
    expect(decided.status).to.equal(200);

    const run = await waitForRun(stack, runId, 30_000);
    expect(run.status, JSON.stringify(run.error)).to.equal('completed');
    const output = run.output as { kpis: Record<string, { firstPrice: number; lastPrice: number; totalReturnPct: number }>; summary: { text: string; provider: string } };
    expect(Object.keys(output)).to.have.members(['kpis', 'summary']);

    // First and last monthly closes in the window, straight from the CSV.
    const prices = parseStocksCsv(await readFile(stocksCsvPath(), 'utf8')).filter(
      (p) => p.date >= input.from && p.date <= input.to,
    );
    for (const symbol of input.symbols) {
      const series = prices.filter((p) => p.symbol === symbol).sort((a, b) => a.date.localeCompare(b.date));
      const k = output.kpis[symbol]!;
      expect(k.firstPrice).to.equal(series[0]!.price);
      expect(k.lastPrice).to.equal(series.at(-1)!.price);
      expect(k.totalReturnPct).to.be.closeTo((series.at(-1)!.price / series[0]!.price - 1) * 100, 1e-9);
    }
    expect(output.summary.provider).to.equal('local');
    expect(output.summary.text).to.contain('AAPL').and.to.contain('MSFT');

    const publishes = receiver.requests.filter((r) => r.path === '/publish');
    expect(publishes).to.have.length(1);
    expect(publishes[0]?.headers['idempotency-key']).to.equal(`${runId}.publish.1`);
    expect((publishes[0]?.json as { summary: string }).summary).to.equal(output.summary.text);

    const types = (await runEvents(stack, runId)).map((e) => e.type);
    expect(types[0]).to.equal('run.queued');
    expect(types.at(-1)).to.equal('run.completed');
    // Every event reached the webhook receiver with a valid signature.
    await waitFor(
      async () => (receiver.webhooks.filter((w) => w.data.runId === runId).length === types.length ? true : undefined),
      10_000,
      'all webhooks',
    );
    expect(receiver.rejected).to.equal(0);
  });

  it('skips publish when there is no publishUrl', async function () {
    const { body } = await api<{ id: string }>(stack, 'POST', '/v1/runs', {
      definition: 'kpi-tracking',
      input: { symbols: ['IBM'], from: '2001-01-01', to: '2001-12-31' },
    });
    const approval = await waitFor(
      async () => {
        const list = await api<{ items: Array<{ id: string; runId: string }> }>(stack, 'GET', '/v1/approvals?status=pending');
        return list.body.items.find((a) => a.runId === body.id);
      },
      20_000,
      'pending approval',
    );
    expect((await api(stack, 'POST', `/v1/approvals/${approval.id}/decision`, { decision: 'continue' })).status).to.equal(200);
    const run = await waitForRun(stack, body.id);
    expect(run.status).to.equal('completed');
    expect(run.steps.find((s) => s.id === 'publish')?.status).to.equal('skipped');
  });

  it('a retry decision re-runs kpis and asks again, keeping the first approval in history', async function () {
    const { body } = await api<{ id: string }>(stack, 'POST', '/v1/runs', {
      definition: 'kpi-tracking',
      input: { symbols: ['GOOG'], from: '2006-01-01', to: '2006-12-31' },
    });
    const pendingApproval = (exclude?: string) =>
      waitFor(
        async () => {
          const list = await api<{ items: Array<{ id: string; runId: string; decisions: string[] }> }>(stack, 'GET', '/v1/approvals?status=pending');
          return list.body.items.find((a) => a.runId === body.id && a.id !== exclude);
        },
        20_000,
        'pending approval',
      );
    const first = await pendingApproval();
    expect(first.decisions).to.deep.equal(['continue', 'retry', 'abort']);
    expect((await api(stack, 'POST', `/v1/approvals/${first.id}/decision`, { decision: 'retry', comment: 'recompute' })).status).to.equal(200);
    const second = await pendingApproval(first.id);
    expect((await api(stack, 'POST', `/v1/approvals/${second.id}/decision`, { decision: 'continue' })).status).to.equal(200);

    const run = await waitForRun(stack, body.id);
    expect(run.status, JSON.stringify(run.error)).to.equal('completed');
    expect(run.approvals.map((a) => `${a.status}:${a.decision}`)).to.deep.equal(['decided:retry', 'decided:continue']);
    const kpis = run.steps.find((s) => s.id === 'kpis') as { attempts: number; generation?: number } | undefined;
    expect(kpis?.attempts).to.equal(2);
    expect(kpis?.generation).to.equal(2);
    const events = await runEvents(stack, body.id);
    const count = (type: string, stepId: string) => events.filter((e) => e.type === type && e.stepId === stepId).length;
    expect(count('step.completed', 'kpis')).to.equal(2);
    expect(count('step.retrying', 'kpis')).to.equal(1);
    expect(count('step.retrying', 'review')).to.equal(1);
    expect(count('checkpoint.requested', 'review')).to.equal(2);
    expect(count('step.completed', 'load')).to.equal(1);
    expect(count('step.completed', 'summary')).to.equal(1);
    // Each generation of kpis ran as its own job.
    const jobs = await Promise.all([1, 2].map((g) => stack.deps.queues.get('agent-function').getJob(`${body.id}.kpis.${g}`)));
    expect(jobs.map((j) => j?.id)).to.deep.equal([`${body.id}.kpis.1`, `${body.id}.kpis.2`]);
  });
});
