import { expect } from 'chai';
import { AgentError, RetryLaterError, ValidationError } from '../../lib/index.js';
import { startFakeOpenAI, type FakeServer } from '../../test/support/fakes.js';
import { rejection, testContext } from '../test-context.js';
import { loopbackHttp } from '../test-catalog.js';
import { exampleForSchema, LlmConfig, llmImplementation } from './llm.js';

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['headline', 'channels', 'budget'],
  properties: {
    headline: { type: 'string', minLength: 3 },
    channels: { type: 'array', minItems: 2, items: { type: 'string', enum: ['mail', 'web', 'social'] } },
    budget: { type: 'integer', minimum: 100 },
  },
};

describe('llm implementation', () => {
  const run = (input: unknown, ctx = testContext(), config: unknown = {}) => llmImplementation.run(input, ctx, LlmConfig.parse(config));

  describe('against an OpenAI-compatible endpoint (fake)', () => {
    let fake: FakeServer;
    let answer: string | undefined;
    before(async () => {
      fake = await startFakeOpenAI({ apiKey: 'sk-fake', chat: () => answer });
    });
    after(async () => {
      await fake.close();
    });
    beforeEach(() => {
      answer = undefined;
      fake.requests.length = 0;
      fake.script.length = 0;
    });
    const ctx = () =>
      testContext({ llm: { baseUrl: fake.url, apiKey: 'sk-fake', model: 'default-model', timeoutMs: 5000 }, http: loopbackHttp() });

    it('sends system and prompt with the config defaults, and returns text, model, provider and usage', async () => {
      const out = await run({ prompt: 'Hello there' }, ctx(), { system: 'Be brief.', temperature: 0.3 });
      expect(out).to.deep.include({ text: 'Echo: Hello there', model: 'default-model', provider: 'openai-compatible' });
      const usage = (out as { usage: { inputTokens: number; outputTokens: number } }).usage;
      expect(usage.inputTokens).to.be.greaterThan(0);
      expect(usage.outputTokens).to.equal('Echo: Hello there'.length);
      const [request] = fake.requests;
      expect(request?.url).to.equal('/chat/completions');
      expect(request?.headers.authorization).to.equal('Bearer sk-fake');
      expect(JSON.parse(request?.body ?? '{}')).to.deep.equal({
        model: 'default-model',
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Hello there' },
        ],
        temperature: 0.3,
      });
    });

    it('lets the step override system, model and temperature, and pass messages', async () => {
      await run(
        { messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }], system: 'S', model: 'm2', temperature: 1 },
        ctx(),
        { system: 'ignored', model: 'm1' },
      );
      const body = JSON.parse(fake.requests[0]?.body ?? '{}') as { model: string; temperature: number; messages: { role: string }[] };
      expect(body.model).to.equal('m2');
      expect(body.temperature).to.equal(1);
      expect(body.messages.map((m) => m.role)).to.deep.equal(['system', 'user', 'assistant', 'user']);
    });

    it('requests structured output and returns the validated JSON', async () => {
      const out = await run({ prompt: 'Plan a campaign', schema, schemaName: 'campaign' }, ctx());
      expect(out).to.deep.include({ json: { headline: 'local', channels: ['mail', 'mail'], budget: 100 }, provider: 'openai-compatible' });
      const body = JSON.parse(fake.requests[0]?.body ?? '{}') as { response_format: unknown };
      expect(body.response_format).to.deep.equal({ type: 'json_schema', json_schema: { name: 'campaign', schema, strict: true } });
    });

    it('fails clearly when the structured answer violates the schema', async () => {
      answer = JSON.stringify({ headline: 'Hi', channels: ['fax'], budget: 5 });
      const err = await rejection(run({ prompt: 'Plan', schema }, ctx()));
      expect(err).to.be.instanceOf(AgentError);
      expect(err.message).to.match(/^openai-compatible answer does not match the requested schema: json\.headline: must NOT have fewer than 3 characters/);
      expect(err.message).to.contain('json.channels');
    });

    it('fails clearly when the structured answer is not JSON', async () => {
      answer = 'Sure! Here is your plan.';
      const err = await rejection(run({ prompt: 'Plan', schema }, ctx()));
      expect(err).to.be.instanceOf(AgentError);
      expect(err.message).to.contain('is not JSON although a schema was requested');
    });

    it('turns 429 and 5xx into RetryLaterError honouring Retry-After', async () => {
      fake.script.push({ status: 429, body: { error: { message: 'Rate limit reached' } }, headers: { 'retry-after': '3' } });
      const limited = await rejection(run({ prompt: 'x' }, ctx()));
      expect(limited).to.be.instanceOf(RetryLaterError);
      expect((limited as RetryLaterError).retryAfterMs).to.equal(3000);
      fake.script.push({ status: 502, body: 'bad gateway' });
      expect(await rejection(run({ prompt: 'x' }, ctx()))).to.be.instanceOf(RetryLaterError);
    });

    it('turns a 401 into AgentError with the provider message', async () => {
      const err = await rejection(run({ prompt: 'x' }, testContext({ llm: { baseUrl: fake.url, apiKey: 'wrong', model: 'm', timeoutMs: 5000 }, http: loopbackHttp() })));
      expect(err).to.be.instanceOf(AgentError);
      expect(err.message).to.contain('401').and.to.contain('Incorrect API key');
    });
  });

  describe('local provider (no LLM base URL)', () => {
    it('is deterministic and labelled local', async () => {
      const text = 'First sentence here. Second one follows. ' + 'word '.repeat(100);
      const a = await run({ prompt: text });
      const b = await run({ prompt: text });
      expect(a).to.deep.equal(b);
      expect(a).to.deep.include({ text: 'First sentence here. Second one follows.', model: 'local', provider: 'local' });
    });

    it('answers simple schemas with a value that satisfies them', async () => {
      const out = await run({ prompt: 'Plan', schema });
      expect(out).to.deep.include({ json: { headline: 'local', channels: ['mail', 'mail'], budget: 100 }, provider: 'local' });
    });

    it('fails clearly when it cannot satisfy a schema (pattern)', async () => {
      const err = await rejection(run({ prompt: 'x', schema: { type: 'object', required: ['code'], properties: { code: { type: 'string', pattern: '^[A-Z]{3}$' } } } }));
      expect(err).to.be.instanceOf(AgentError);
      expect(err.message).to.contain('local answer does not match the requested schema: json.code: must match pattern');
    });

    it('covers formats, const, defaults, anyOf, allOf and bounds', () => {
      expect(
        exampleForSchema({
          type: 'object',
          properties: {
            when: { type: 'string', format: 'date' },
            kind: { const: 'x' },
            n: { type: 'number', default: 7 },
            either: { anyOf: [{ type: 'boolean' }, { type: 'string' }] },
            both: { allOf: [{ type: 'object', properties: { a: { type: 'integer', exclusiveMinimum: 1 } } }, { properties: { b: { type: 'null' } } }] },
            code: { type: 'string', minLength: 8 },
          },
        }),
      ).to.deep.equal({ when: '2000-01-01', kind: 'x', n: 7, either: false, both: { a: 2, b: null }, code: 'localxxx' });
    });
  });

  it('validates input and config, naming the field', async () => {
    const both = await rejection(run({ prompt: 'a', messages: [{ role: 'user', content: 'b' }] }));
    expect((both as ValidationError).field).to.equal('prompt');
    const role = await rejection(run({ messages: [{ role: 'wizard', content: 'b' }] }));
    expect((role as ValidationError).field).to.equal('messages.0.role');
    const badSchema = await rejection(run({ prompt: 'a', schema: { type: 'no-such-type' } }));
    expect(badSchema).to.be.instanceOf(ValidationError);
    expect((badSchema as ValidationError).field).to.equal('schema');
    expect(LlmConfig.safeParse({ temperature: 3 }).success).to.equal(false);
  });
});
