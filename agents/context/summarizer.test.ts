import { expect } from 'chai';
import { AgentError, RetryLaterError, ValidationError } from '../../lib/index.js';
import { testContext, rejection } from '../test-context.js';
import { sendJson, startTestServer, type TestServer } from '../test-http.js';
import { catalogAgent, loopbackHttp, type BoundAgent } from '../test-catalog.js';
import { summarizerImplementation, SummarizerConfig } from './summarizer.js';

const kpis = {
  MSFT: {
    firstPrice: 26.5,
    lastPrice: 29.8,
    totalReturnPct: 12.45283,
    cagrPct: 2.38,
    maxDrawdownPct: 45.12,
    volatilityPct: 24.7,
    bestMonth: { date: '2008-11-01', returnPct: 11.3 },
    worstMonth: { date: '2008-10-01', returnPct: -16.4 },
  },
  AAPL: {
    firstPrice: 64.74,
    lastPrice: 210.73,
    totalReturnPct: 225.5,
    cagrPct: 26.65,
    maxDrawdownPct: 58.96,
    volatilityPct: 40.1,
    bestMonth: { date: '2005-07-01', returnPct: 22.3 },
    worstMonth: { date: '2008-10-01', returnPct: -32.7 },
  },
};
const input = { kpis, from: '2005-01-01', to: '2009-12-31' };


describe('summarizer agent', () => {
  /** The engine-visible summarizer: the catalog entry bound to its implementation. */
  let summarizer: BoundAgent;
  before(async () => {
    summarizer = await catalogAgent('summarizer');
  });

  it('is a context agent run by the summarizer implementation', () => {
    expect(summarizer.spec.type).to.equal('context');
    expect(summarizer.spec.name).to.equal('summarizer');
    expect(summarizer.implementation).to.equal(summarizerImplementation);
  });

  describe('local provider (no LLM base URL)', () => {
    it('is deterministic and mentions every symbol', async () => {
      const first = (await summarizer.run(input, testContext())) as { text: string; provider: string };
      const second = (await summarizer.run(structuredClone(input), testContext())) as { text: string; provider: string };
      expect(first.provider).to.equal('local');
      expect(second).to.deep.equal(first);
      expect(first.text).to.contain('AAPL').and.to.contain('MSFT');
      expect(first.text).to.match(/^From 2005-01-01 to 2009-12-31: AAPL returned \+225\.5%/);
      expect(first.text).to.contain('MSFT returned +12.5%');
      expect(first.text).to.contain('The strongest performer was AAPL (+225.5%)');
      expect(first.text).to.contain("the deepest drawdown was AAPL's (59.0%)");
    });

    it('does not depend on the key order of the KPIs', async () => {
      const reversed = { ...input, kpis: { AAPL: kpis.AAPL, MSFT: kpis.MSFT } };
      const a = (await summarizer.run(input, testContext())) as { text: string };
      const b = (await summarizer.run(reversed, testContext())) as { text: string };
      expect(a.text).to.equal(b.text);
    });

    it('leaves out missing values (single-price symbols)', async () => {
      const single = {
        kpis: {
          ONE: {
            firstPrice: 1,
            lastPrice: 1,
            totalReturnPct: 0,
            cagrPct: null,
            maxDrawdownPct: 0,
            volatilityPct: null,
            bestMonth: null,
            worstMonth: null,
          },
        },
      };
      const out = (await summarizer.run(single, testContext())) as { text: string };
      expect(out.text).to.equal('Over the period: ONE returned 0.0% (max drawdown 0.0%).');
    });

    it('names the bad field in a ValidationError', async () => {
      const bad = { kpis: { AAPL: { ...kpis.AAPL, firstPrice: 'sixty' } } };
      const err = await rejection(summarizer.run(bad, testContext()));
      expect(err).to.be.instanceOf(ValidationError);
      expect((err as ValidationError).field).to.equal('kpis.AAPL.firstPrice');
      expect(err.message).to.match(/^kpis\.AAPL\.firstPrice: expected number/);
    });

    it('summarises text as its first sentences within maxWords, with usage estimates', async () => {
      const text = 'Baton runs definitions. Each step is an agent. Checkpoints wait for people. ' + 'More words follow here. '.repeat(40);
      const out = await summarizerImplementation.run({ text, maxWords: 12 }, testContext(), SummarizerConfig.parse({}));
      expect(out).to.deep.include({ text: 'Baton runs definitions. Each step is an agent.', provider: 'local', model: 'local' });
      expect((out as { usage: { inputTokens: number } }).usage.inputTokens).to.be.greaterThan(0);
    });

    it('summarises any JSON by its shape and fields', async () => {
      const out = (await summarizerImplementation.run(
        { data: { campaign: 'spring', channels: ['mail', 'web'], budget: 1200 } },
        testContext(),
        SummarizerConfig.parse({}),
      )) as { text: string };
      expect(out.text).to.equal('A record with 3 fields (budget: 1200; campaign: spring; channels: a list of 2 items).');
    });

    it('requires exactly one of text, data or kpis', async () => {
      for (const bad of [{}, { text: 'a', data: 1 }, { instructions: 'x' }]) {
        const err = await rejection(summarizerImplementation.run(bad, testContext(), SummarizerConfig.parse({})));
        expect(err, JSON.stringify(bad)).to.be.instanceOf(ValidationError);
        expect((err as ValidationError).field).to.equal('text');
      }
    });
  });

  describe('OpenAI-compatible provider', () => {
    let server: TestServer;
    let reply: (status: number, body: unknown, headers?: Record<string, string>) => void;
    let next: { status: number; body: unknown; headers: Record<string, string> };

    beforeEach(async () => {
      next = { status: 200, body: {}, headers: {} };
      reply = (status, body, headers = {}) => {
        next = { status, body, headers };
      };
      server = await startTestServer((_req, res) => sendJson(res, next.status, next.body, next.headers));
    });
    afterEach(async () => {
      await server.close();
    });

    const llmContext = () =>
      testContext({
        llm: { baseUrl: `${server.baseUrl}/v1`, apiKey: 'sk-test-123', model: 'test-model', timeoutMs: 5000 },
        http: loopbackHttp(),
      });

    it('posts the KPIs to /chat/completions and returns the text, model and usage', async () => {
      reply(200, {
        id: 'chatcmpl-1',
        object: 'chat.completion',
        model: 'test-model-2024',
        choices: [{ index: 0, message: { role: 'assistant', content: 'AAPL beat MSFT.' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 120, completion_tokens: 8, total_tokens: 128 },
      });
      const out = await summarizer.run(input, llmContext());

      expect(out).to.deep.equal({
        text: 'AAPL beat MSFT.',
        provider: 'openai-compatible',
        model: 'test-model-2024',
        usage: { inputTokens: 120, outputTokens: 8 },
      });
      expect(server.requests).to.have.length(1);
      const [request] = server.requests;
      expect(request?.method).to.equal('POST');
      expect(request?.url).to.equal('/v1/chat/completions');
      expect(request?.headers.authorization).to.equal('Bearer sk-test-123');
      expect(request?.headers['content-type']).to.match(/^application\/json/);
      const body = JSON.parse(request?.body ?? '{}') as {
        model: string;
        temperature: number;
        messages: { role: string; content: string }[];
      };
      expect(body.model).to.equal('test-model');
      expect(body.temperature).to.equal(0);
      expect(body.messages.map((m) => m.role)).to.deep.equal(['system', 'user']);
      const user = JSON.parse(body.messages[1]?.content ?? '{}') as { window: unknown; kpis: Record<string, unknown> };
      expect(user.window).to.deep.equal({ from: '2005-01-01', to: '2009-12-31' });
      expect(Object.keys(user.kpis)).to.deep.equal(['AAPL', 'MSFT']);
    });

    it('falls back to the configured model and zero usage when the response omits them', async () => {
      reply(200, { choices: [{ message: { role: 'assistant', content: 'Short.' } }] });
      const out = await summarizer.run(input, llmContext());
      expect(out).to.deep.equal({ text: 'Short.', provider: 'openai-compatible', model: 'test-model', usage: { inputTokens: 0, outputTokens: 0 } });
    });

    it('sends text with the generic system prompt, the word cap and the instructions', async () => {
      reply(200, { choices: [{ message: { role: 'assistant', content: 'Gist.' } }] });
      const config = SummarizerConfig.parse({});
      const out = await summarizerImplementation.run({ text: 'Long text here.', instructions: 'Be terse.', maxWords: 30 }, llmContext(), config);
      expect(out).to.include({ text: 'Gist.', provider: 'openai-compatible' });
      const body = JSON.parse(server.requests[0]?.body ?? '{}') as { messages: { role: string; content: string }[] };
      expect(body.messages[0]?.content).to.contain('at most 30 words').and.to.contain('Be terse.');
      expect(body.messages[1]?.content).to.equal('Long text here.');
    });

    it('turns a 503 with Retry-After: 2 into RetryLaterError(retryAfterMs 2000)', async () => {
      reply(503, { error: { message: 'overloaded' } }, { 'retry-after': '2' });
      const err = await rejection(summarizer.run(input, llmContext()));
      expect(err).to.be.instanceOf(RetryLaterError);
      expect((err as RetryLaterError).retryAfterMs).to.equal(2000);
    });

    it('turns a 429 with an HTTP-date Retry-After into a wait in milliseconds', async () => {
      reply(429, { error: { message: 'rate limited' } }, { 'retry-after': new Date(Date.now() + 30_000).toUTCString() });
      const err = await rejection(summarizer.run(input, llmContext()));
      expect(err).to.be.instanceOf(RetryLaterError);
      // HTTP-dates have 1 s resolution
      expect((err as RetryLaterError).retryAfterMs).to.be.within(28_000, 30_000);
    });

    it('turns a 400 into AgentError with the status and a body excerpt', async () => {
      reply(400, { error: { message: 'model not found' } });
      const err = await rejection(summarizer.run(input, llmContext()));
      expect(err).to.be.instanceOf(AgentError);
      expect(err.message).to.contain('400').and.to.contain('model not found');
    });

    it('turns a malformed completion into AgentError', async () => {
      reply(200, { choices: [] });
      const err = await rejection(summarizer.run(input, llmContext()));
      expect(err).to.be.instanceOf(AgentError);
      expect(err.message).to.match(/malformed/);
    });
  });
});
