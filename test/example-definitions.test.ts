/**
 * The example definitions of `definitions/` end to end (issue 7 item 8), through the HTTP API with
 * in-process workers, real Redis and Postgres, and local fakes speaking the providers' wire
 * formats: image-orchestration (fake OpenAI and Google Images APIs, keys as organization
 * secrets), marketing-campaign (fake n8n webhook), content-pipeline (a local receiver) and
 * portfolio-review (the seeded market prices, kpi-tracking child runs).
 */
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { fakePng, startFakeGoogle, startFakeN8n, startFakeOpenAI, type FakeServer } from './support/fakes.js';
import type { DeliverableView } from '../services/store/index.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { api, runEvents, startStack, waitFor, waitForRun, type RunView, type Stack } from './support/stack.js';

/** The run view with the sub-orchestration links and per-step assets. */
interface FullRunView extends RunView {
  children: Array<{ id: string; stepId: string | null; definition: string; status: string }>;
  parent: { runId: string; stepId: string | null } | null;
}

interface ApprovalItem {
  id: string;
  runId: string;
  stepId: string;
  status: string;
}

/** A deliverable as `GET /v1/runs/:id/deliverables` sends it (timestamps as ISO text). */
type DeliverableJson = Omit<DeliverableView, 'createdAt'> & { createdAt: string };

/** The brief the fake LLM writes for marketing-campaign. */
const BRIEF = { headline: 'Brew better mornings', message: 'Single-origin beans, roasted weekly.', callToAction: 'Order your first bag' };

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe('example definitions end to end', function () {
  this.timeout(90_000);
  const openaiKey = `sk-test-${Math.random().toString(36).slice(2)}-OPENAI`;
  const googleKey = `goog-${Math.random().toString(36).slice(2)}-GOOGLE`;
  let stack: Stack;
  let openai: FakeServer;
  let google: FakeServer;
  let n8n: FakeServer;
  let receiver: Receiver;

  before(async function () {
    // Chat: a campaign brief as structured output; otherwise the fake's echo of the prompt.
    openai = await startFakeOpenAI({
      apiKey: openaiKey,
      chat: (body) => {
        if ((body.response_format as { type?: string } | undefined)?.type !== 'json_schema') return undefined;
        return JSON.stringify({ headline: BRIEF.headline, message: BRIEF.message, callToAction: BRIEF.callToAction });
      },
    });
    google = await startFakeGoogle({ apiKey: googleKey });
    n8n = await startFakeN8n({ answer: (body) => ({ ok: true, workflow: 'campaign-launch', received: body }) });
    stack = await startStack({
      config: {
        agentEnv: { OPENAI_BASE_URL: openai.url, GOOGLE_API_BASE_URL: google.url, MARKETING_SWARM_URL: n8n.url },
        llm: { baseUrl: openai.url, apiKey: openaiKey, model: 'gpt-4o-mini', timeoutMs: 10_000 },
      },
    });
    receiver = await startReceiver(stack.config.auth.webhookSecret);
  });
  after(async function () {
    await receiver?.close();
    await stack?.close();
    await n8n?.close();
    await google?.close();
    await openai?.close();
  });

  async function startRun(definition: string, input: unknown): Promise<string> {
    const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition, input });
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
    return res.body.id;
  }

  async function view(runId: string): Promise<FullRunView> {
    const res = await api<FullRunView>(stack, 'GET', `/v1/runs/${runId}`);
    expect(res.status).to.equal(200);
    return res.body;
  }

  /** The pending approval of a run's step. */
  async function pendingApproval(runId: string, stepId: string): Promise<ApprovalItem> {
    return waitFor(
      async () => {
        const { body } = await api<{ items: ApprovalItem[] }>(stack, 'GET', '/v1/approvals?status=pending&limit=200');
        return body.items.find((a) => a.runId === runId && a.stepId === stepId);
      },
      30_000,
      `pending approval of ${runId}.${stepId}`,
    );
  }

  async function decide(approvalId: string, body: Record<string, unknown>): Promise<void> {
    const res = await api(stack, 'POST', `/v1/approvals/${approvalId}/decision`, body);
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
  }

  describe('image-orchestration', function () {
    it('generates every prompt with both providers; assets download byte-identical; keys never leak', async function () {
      for (const [name, value] of [
        ['OPENAI_API_KEY', openaiKey],
        ['GOOGLE_API_KEY', googleKey],
      ] as const) {
        const put = await api(stack, 'POST', '/v1/secrets', { name, value });
        expect(put.status, JSON.stringify(put.body)).to.equal(201);
      }
      const prompts = ['a lighthouse at dawn', 'a red bicycle in the rain'];
      const openaiBefore = openai.requests.length;
      const googleBefore = google.requests.length;
      const runId = await startRun('image-orchestration', { prompts });
      const run = (await waitForRun(stack, runId, 60_000)) as FullRunView;
      expect(run.status, JSON.stringify(run.steps)).to.equal('completed');

      const images = (run.output as { images: Array<{ prompt: string; openai: string[]; google: string[] }> }).images;
      expect(images.map((i) => i.prompt)).to.deep.equal(prompts);
      for (const image of images) {
        expect(image.openai).to.have.length(1);
        expect(image.google).to.have.length(1);
      }

      // The assets belong to the child run of image-generation.
      const parent = await view(runId);
      expect(parent.children).to.have.length(1);
      const child = parent.children[0];
      expect(child).to.include({ definition: 'image-generation', status: 'completed', stepId: 'images' });
      const childId = child?.id ?? '';

      // What the fakes sent, by sha256; per prompt, each asset is the image its provider made for it.
      const sent = new Set([...openai.images, ...google.images].map(sha256));
      const downloaded: string[] = [];
      const download = async (assetId: string): Promise<string> => {
        const res = await fetch(`${stack.baseUrl}/v1/runs/${childId}/assets/${assetId}`, { headers: { authorization: `Bearer ${stack.apiKey}` } });
        expect(res.status).to.equal(200);
        expect(res.headers.get('content-type')).to.equal('image/png');
        const bytes = Buffer.from(await res.arrayBuffer());
        const digest = sha256(bytes);
        expect(res.headers.get('etag')).to.equal(`"${digest}"`);
        expect(sent.has(digest), `asset ${assetId} is byte-identical to a PNG the fakes sent`).to.equal(true);
        downloaded.push(digest);
        return digest;
      };
      for (const image of images) {
        expect(await download(image.openai[0] ?? '')).to.equal(sha256(fakePng(`openai:${image.prompt}:0`)));
        expect(await download(image.google[0] ?? '')).to.equal(sha256(fakePng(`google:imagen-3.0-generate-002:${image.prompt}:0`)));
      }
      expect(new Set(downloaded).size, 'four distinct images').to.equal(4);

      const deliverables = await api<{ items: DeliverableJson[] }>(stack, 'GET', `/v1/runs/${childId}/deliverables`);
      expect(deliverables.status).to.equal(200);
      expect(deliverables.body.items).to.have.length(4);
      expect(deliverables.body.items.every((d) => d.kind === 'image-set')).to.equal(true);
      expect(deliverables.body.items.flatMap((d) => d.assetIds).sort()).to.deep.equal(images.flatMap((i) => [...i.openai, ...i.google]).sort());

      // The providers saw the real keys.
      const openaiCalls = openai.requests.slice(openaiBefore);
      const googleCalls = google.requests.slice(googleBefore);
      expect(openaiCalls).to.have.length(2);
      expect(googleCalls).to.have.length(2);
      for (const r of openaiCalls) expect(r.headers.authorization).to.equal(`Bearer ${openaiKey}`);
      for (const r of googleCalls) expect(r.headers['x-goog-api-key']).to.equal(googleKey);

      // Neither key appears in the view, events or manifest of either run.
      for (const id of [runId, childId]) {
        const surfaces = {
          view: JSON.stringify((await api(stack, 'GET', `/v1/runs/${id}`)).body),
          events: JSON.stringify(await runEvents(stack, id)),
          manifest: JSON.stringify((await api(stack, 'GET', `/v1/runs/${id}/manifest`)).body),
        };
        for (const [name, text] of Object.entries(surfaces)) {
          expect(text.length).to.be.greaterThan(0);
          expect(text, `${name} of ${id} leaks the OpenAI key`).not.to.contain(openaiKey);
          expect(text, `${name} of ${id} leaks the Google key`).not.to.contain(googleKey);
        }
      }
    });

    it('fails the openai step with MISSING_SECRET when OPENAI_API_KEY is not stored', async function () {
      // Only the Google key is stored.
      expect((await api(stack, 'POST', '/v1/secrets', { name: 'GOOGLE_API_KEY', value: googleKey })).status).to.equal(201);
      expect((await api(stack, 'POST', '/v1/secrets', { name: 'OPENAI_API_KEY', value: openaiKey })).status).to.equal(201);
      expect((await api(stack, 'DELETE', '/v1/secrets/OPENAI_API_KEY')).status).to.equal(204);
      const openaiBefore = openai.requests.length;
      const runId = await startRun('image-orchestration', { prompts: ['a quiet harbour'] });
      const run = await waitForRun(stack, runId, 60_000);
      expect(run.status).to.equal('failed');
      const parent = await view(runId);
      const childId = parent.children[0]?.id ?? '';
      const child = await waitForRun(stack, childId, 30_000);
      expect(child.status).to.equal('failed');
      const step = child.steps.find((s) => s.id === 'openai');
      expect(step?.status).to.equal('failed');
      expect((step?.error as { code: string }).code, JSON.stringify(step?.error)).to.equal('MISSING_SECRET');
      expect((step?.error as { message: string }).message).to.contain('OPENAI_API_KEY');
      expect(openai.requests.length, 'no request reached OpenAI without a key').to.equal(openaiBefore);
    });
  });
  describe('marketing-campaign', function () {
    it('writes a brief, takes an edited headline at the checkpoint and launches it on the n8n webhook', async function () {
      const before = n8n.requests.length;
      const chatBefore = openai.requests.length;
      const webhookUrl = `${n8n.url}/webhook/campaign-launch`;
      const runId = await startRun('marketing-campaign', { product: 'Baton Coffee', audience: 'remote developers', channels: ['email'], webhookUrl });

      const approval = await pendingApproval(runId, 'approve');
      // The brief came from the context step, as structured output of the LLM.
      const parked = await view(runId);
      expect(parked.steps.find((s) => s.id === 'brief')?.output).to.deep.include({ json: BRIEF, provider: 'openai-compatible' });
      const chat = openai.requests.slice(chatBefore).find((r) => r.url === '/chat/completions');
      const chatBody = JSON.parse(chat?.body ?? '{}') as { response_format?: { type: string }; messages: { role: string; content: string }[] };
      expect(chatBody.response_format?.type).to.equal('json_schema');
      expect(chatBody.messages.map((m) => m.content).join('\n')).to.contain('Baton Coffee').and.to.contain('remote developers');
      expect(n8n.requests.length, 'nothing launched before the approval').to.equal(before);

      const headline = 'Mornings, compiled';
      await decide(approval.id, { decision: 'continue', input: { headline }, comment: 'punchier headline' });
      const run = await waitForRun(stack, runId);
      expect(run.status, JSON.stringify(run.error)).to.equal('completed');

      const calls = n8n.requests.slice(before);
      expect(calls).to.have.length(1);
      const call = calls[0];
      expect(call?.url).to.equal('/webhook/campaign-launch');
      expect(call?.headers['idempotency-key']).to.equal(`${runId}.launch.1`);
      const payload = JSON.parse(call?.body ?? '{}') as { product: string; audience: string; runId: string; brief: typeof BRIEF };
      expect(payload).to.deep.include({ product: 'Baton Coffee', audience: 'remote developers', runId });
      expect(payload.brief).to.deep.equal({ ...BRIEF, headline });

      const output = run.output as { brief: typeof BRIEF; launched: { ok: boolean; workflow: string; received: unknown } };
      expect(output.brief).to.deep.equal({ ...BRIEF, headline });
      expect(output.launched).to.deep.include({ ok: true, workflow: 'campaign-launch' });
      expect(output.launched.received).to.deep.equal(payload);
    });
  });

  describe('content-pipeline', function () {
    it('drafts every topic (fan-out), waits for review, then publishes all posts by http', async function () {
      const topics = ['queue design', 'idempotency keys', 'human approvals'];
      const runId = await startRun('content-pipeline', { topics, tone: 'friendly', publishUrl: `${receiver.url}/publish` });

      const approval = await pendingApproval(runId, 'review');
      const parked = await view(runId);
      const drafts = parked.steps.find((s) => s.id === 'drafts')?.output as Array<{ text: string }>;
      expect(drafts).to.have.length(3);
      topics.forEach((topic, i) => expect(drafts[i]?.text).to.contain(topic).and.to.contain('friendly'));
      expect(receiver.requests.filter((r) => r.path === '/publish'), 'nothing published before the review').to.have.length(0);

      await decide(approval.id, { decision: 'continue' });
      const run = await waitForRun(stack, runId);
      expect(run.status, JSON.stringify(run.error)).to.equal('completed');
      expect(run.output).to.deep.equal({ published: 200, posts: 3 });

      const published = receiver.requests.filter((r) => r.path === '/publish');
      expect(published).to.have.length(1);
      expect(published[0]?.headers['idempotency-key']).to.equal(`${runId}.publish.1`);
      const body = published[0]?.json as { runId: string; posts: Array<{ topic: string; text: string }> };
      expect(body.runId).to.equal(runId);
      expect(body.posts.map((p) => p.topic)).to.deep.equal(topics);
      body.posts.forEach((post, i) => expect(post.text).to.equal(drafts[i]?.text));
    });
  });
  describe('portfolio-review', function () {
    interface PortfolioReport {
      name: string;
      symbols: string[];
      best: { symbol: string; totalReturnPct: number; cagrPct: number | null };
      worst: { symbol: string; totalReturnPct: number; cagrPct: number | null };
      meanCagrPct: number | null;
      summary: string;
    }

    /** First and last price of each symbol in the window, straight from the seeded table. */
    async function growth(symbols: string[], from: string, to: string): Promise<Map<string, { totalReturnPct: number; cagrPct: number }>> {
      const rows = await stack.deps.database.sql<{ symbol: string; first_date: string; last_date: string; first_price: number; last_price: number }[]>`
        select symbol,
               to_char(min(date), 'YYYY-MM-DD') as first_date, to_char(max(date), 'YYYY-MM-DD') as last_date,
               (array_agg(price order by date))[1]::float8 as first_price,
               (array_agg(price order by date desc))[1]::float8 as last_price
        from market_prices
        where symbol = any(${symbols}::text[]) and date between ${from}::date and ${to}::date
        group by symbol`;
      expect(rows.map((r) => r.symbol).sort()).to.deep.equal([...symbols].sort());
      return new Map(
        rows.map((r) => {
          const ratio = r.last_price / r.first_price;
          const years = (Date.parse(`${r.last_date}T00:00:00Z`) - Date.parse(`${r.first_date}T00:00:00Z`)) / 86_400_000 / 365.25;
          return [r.symbol, { totalReturnPct: (ratio - 1) * 100, cagrPct: (Math.pow(ratio, 1 / years) - 1) * 100 }];
        }),
      );
    }

    it('runs kpi-tracking per portfolio as child runs and reports best, worst and mean CAGR', async function () {
      const from = '2005-01-01';
      const to = '2009-12-31';
      const portfolios = [
        { name: 'Platforms', symbols: ['AAPL', 'MSFT'] },
        { name: 'Mixed', symbols: ['AMZN', 'GOOG', 'IBM'] },
      ];
      const runId = await startRun('portfolio-review', { portfolios, from, to });

      // Two kpi-tracking child runs, each parked at its own review checkpoint.
      const children = await waitFor(
        async () => {
          const current = await view(runId);
          return current.children.length === 2 ? current.children : undefined;
        },
        30_000,
        'two child runs',
      );
      expect(children.map((c) => c.definition)).to.deep.equal(['kpi-tracking', 'kpi-tracking']);
      expect(children.every((c) => c.stepId === 'review')).to.equal(true);
      for (const child of children) {
        const approval = await pendingApproval(child.id, 'review');
        expect((await view(runId)).status, 'the parent waits for its children').to.equal('running');
        await decide(approval.id, { decision: 'continue' });
      }
      const run = await waitForRun(stack, runId, 60_000);
      expect(run.status, JSON.stringify(run.error)).to.equal('completed');
      for (const child of children) expect((await view(child.id)).status).to.equal('completed');

      const output = run.output as { portfolios: PortfolioReport[]; report: string };
      expect(output.portfolios.map((p) => p.name)).to.deep.equal(portfolios.map((p) => p.name));
      for (const [i, portfolio] of portfolios.entries()) {
        const report = output.portfolios[i] as PortfolioReport;
        const expected = await growth(portfolio.symbols, from, to);
        const ranked = [...expected.entries()].sort((a, b) => b[1].totalReturnPct - a[1].totalReturnPct);
        expect(report.symbols).to.deep.equal(portfolio.symbols);
        expect(report.best.symbol, `${portfolio.name} best`).to.equal(ranked[0]?.[0]);
        expect(report.worst.symbol, `${portfolio.name} worst`).to.equal(ranked[ranked.length - 1]?.[0]);
        expect(report.best.totalReturnPct).to.be.closeTo(ranked[0]?.[1].totalReturnPct ?? NaN, 1e-6);
        expect(report.worst.totalReturnPct).to.be.closeTo(ranked[ranked.length - 1]?.[1].totalReturnPct ?? NaN, 1e-6);
        const meanCagr = [...expected.values()].reduce((sum, g) => sum + g.cagrPct, 0) / expected.size;
        expect(report.meanCagrPct, `${portfolio.name} mean CAGR`).to.be.closeTo(meanCagr, 1e-6);
        expect(output.report).to.contain(`${portfolio.name}: best ${report.best.symbol}`);
      }

      const deliverables = await api<{ items: DeliverableJson[] }>(stack, 'GET', `/v1/runs/${runId}/deliverables`);
      expect(deliverables.status).to.equal(200);
      const report = deliverables.body.items.find((d) => d.kind === 'report');
      expect(report, JSON.stringify(deliverables.body)).to.not.equal(undefined);
      expect(report).to.include({ stepId: 'report', title: 'Portfolio review' });
      expect(report?.content).to.deep.equal({ text: output.report, portfolios: output.portfolios });
    });
  });
});
