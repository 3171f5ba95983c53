/**
 * The image-generator modules' request/response handling against the fake providers, run in the
 * real worker-thread function runtime (`ctx.functions.run` with the code from `ctx.moduleCode`):
 * `ctx.require('axios')` goes through the real outbound client to the fakes on 127.0.0.1, assets
 * and deliverables to the recording test context.
 */
import { expect } from 'chai';
import { AgentError, MissingSecretError, RetryLaterError, ValidationError } from '../../lib/index.js';
import { startFakeGoogle, startFakeOpenAI, PNG_SIGNATURE, type FakeServer } from '../../test/support/fakes.js';
import type { FunctionRuntime } from '../function/runtime.js';
import { loadModules, moduleCodeResolver, validateModuleInput, type StepModule } from '../modules.js';
import { loopbackHttp, testFunctionRuntime } from '../test-catalog.js';
import { rejection, testContext, type TestRecorder } from '../test-context.js';
import type { AgentContext, FunctionLimits } from '../types.js';

/**
 * Limits of these calls: the image entries' 256 MiB, and 30 s — the test runtime's bound (the
 * entries ask for 120 s, within the production default FUNCTION_MAX_TIMEOUT_MS of 300 s).
 */
const LIMITS: FunctionLimits = { timeoutMs: 30_000, memoryMb: 256 };

/** Run step module `ref` as a `type: function` step runs it: `ctx.functions.run` on `ctx.moduleCode(ref)`. */
async function runModule(ref: string, input: unknown, ctx: AgentContext): Promise<unknown> {
  return ctx.functions.run(await ctx.moduleCode(ref), input, LIMITS, ctx);
}

describe('image generator modules (function runtime, fake providers)', () => {
  let modules: ReadonlyMap<string, StepModule>;
  let runtime: FunctionRuntime;
  let openai: FakeServer;
  let google: FakeServer;
  let recorder: TestRecorder;
  before(async () => {
    modules = await loadModules();
    runtime = testFunctionRuntime();
    openai = await startFakeOpenAI({ apiKey: 'sk-openai' });
    google = await startFakeGoogle({ apiKey: 'g-key' });
  });
  after(async () => {
    await runtime?.close();
    await openai.close();
    await google.close();
  });
  beforeEach(() => {
    recorder = { assets: [], deliverables: [], progress: [] };
    for (const fake of [openai, google]) {
      fake.requests.length = 0;
      fake.images.length = 0;
      fake.script.length = 0;
    }
  });
  /** A step context: `secrets` are the declared ones (`undefined`: declared but not stored). */
  const ctx = (env: Record<string, string>, secrets: Record<string, string | undefined>) =>
    testContext({ env, secrets, http: loopbackHttp(), functions: runtime, moduleCode: moduleCodeResolver(modules), idempotencyKey: 'run-1.openai.1' }, recorder);

  describe('image-generator-openai@1', () => {
    const module = () => modules.get('image-generator-openai@1')!;
    const openaiRun = (input: unknown, context: AgentContext) => runModule('image-generator-openai@1', input, context);

    it('posts the prompt, saves each PNG as an asset and creates an image-set deliverable', async () => {
      const out = (await openaiRun({ prompt: 'a lighthouse at dawn', n: 2, size: '512x512' }, ctx({ OPENAI_BASE_URL: openai.url }, { OPENAI_API_KEY: 'sk-openai' }))) as { provider: string; prompt: string; assetIds: string[]; deliverableId: string };
      const [request] = openai.requests;
      expect(request?.url).to.equal('/images/generations');
      expect(request?.headers.authorization).to.equal('Bearer sk-openai');
      expect(request?.headers['idempotency-key']).to.equal('run-1.openai.1');
      expect(JSON.parse(request?.body ?? '{}')).to.deep.equal({ model: 'gpt-image-1', prompt: 'a lighthouse at dawn', n: 2, size: '512x512', response_format: 'b64_json' });
      expect(recorder.assets.map((a) => [a.name, a.mimeType])).to.deep.equal([
        ['openai-1.png', 'image/png'],
        ['openai-2.png', 'image/png'],
      ]);
      recorder.assets.forEach((asset, i) => {
        expect(Buffer.from(asset.data).equals(openai.images[i]!)).to.equal(true);
        expect(Buffer.from(asset.data).subarray(0, 8).equals(PNG_SIGNATURE)).to.equal(true);
      });
      expect(openai.images[0]!.equals(openai.images[1]!)).to.equal(false);
      expect(recorder.deliverables).to.have.length(1);
      expect(recorder.deliverables[0]).to.deep.include({
        kind: 'image-set',
        assetIds: recorder.assets.map((a) => a.id),
        content: { prompt: 'a lighthouse at dawn', provider: 'openai', model: 'gpt-image-1', size: '512x512' },
      });
      expect(out).to.deep.equal({ provider: 'openai', prompt: 'a lighthouse at dawn', assetIds: recorder.assets.map((a) => a.id), deliverableId: recorder.deliverables[0]!.id });
    });

    it('fails with MissingSecretError when OPENAI_API_KEY is not stored, before any request', async () => {
      const err = await rejection(openaiRun({ prompt: 'x' }, ctx({ OPENAI_BASE_URL: openai.url }, { OPENAI_API_KEY: undefined })));
      expect(err).to.be.instanceOf(MissingSecretError);
      expect(openai.requests).to.have.length(0);
    });

    it('reports the status and the API message, saying "retry later" for 429/5xx', async () => {
      openai.script.push({ status: 429, body: { error: { message: 'Rate limit reached for images' } } });
      const limited = await rejection(openaiRun({ prompt: 'x' }, ctx({ OPENAI_BASE_URL: openai.url }, { OPENAI_API_KEY: 'sk-openai' })));
      // main.js marks 429/5xx `retryable`: the runtime turns that into RetryLaterError (the step's
      // retry policy applies); any other failure stays an AgentError (final).
      expect(limited).to.be.instanceOf(RetryLaterError);
      expect(limited.message).to.contain('OpenAI images answered HTTP 429 (retry later): Rate limit reached for images');
      const denied = await rejection(openaiRun({ prompt: 'x' }, ctx({ OPENAI_BASE_URL: openai.url }, { OPENAI_API_KEY: 'wrong' })));
      expect(denied).to.be.instanceOf(AgentError);
      expect(denied.message).to.contain('OpenAI images answered HTTP 401: Incorrect API key provided');
    });

    it('declares its input schema', () => {
      validateModuleInput(module(), { prompt: 'ok', n: 2, size: '1024x1024' });
      const err = (() => {
        try {
          validateModuleInput(module(), { prompt: '', n: 20 });
        } catch (e) {
          return e as ValidationError;
        }
        return undefined;
      })();
      expect(err).to.be.instanceOf(ValidationError);
      expect(err?.field).to.equal('input.prompt');
    });
  });

  describe('image-generator-google@1', () => {
    const googleRun = (input: unknown, context: AgentContext) => runModule('image-generator-google@1', input, context);

    it('posts to models/<model>:predict with x-goog-api-key and saves the predictions', async () => {
      const out = (await googleRun({ prompt: 'a red kite', n: 2 }, ctx({ GOOGLE_API_BASE_URL: google.url }, { GOOGLE_API_KEY: 'g-key' }))) as {
        provider: string;
        assetIds: string[];
      };
      const [request] = google.requests;
      expect(request?.url).to.equal('/models/imagen-3.0-generate-002:predict');
      expect(request?.headers['x-goog-api-key']).to.equal('g-key');
      expect(JSON.parse(request?.body ?? '{}')).to.deep.equal({ instances: [{ prompt: 'a red kite' }], parameters: { sampleCount: 2 } });
      expect(recorder.assets.map((a) => [a.name, a.mimeType])).to.deep.equal([
        ['google-1.png', 'image/png'],
        ['google-2.png', 'image/png'],
      ]);
      recorder.assets.forEach((asset, i) => expect(Buffer.from(asset.data).equals(google.images[i]!)).to.equal(true));
      expect(recorder.deliverables[0]).to.deep.include({ kind: 'image-set', content: { prompt: 'a red kite', provider: 'google', model: 'imagen-3.0-generate-002' } });
      expect(out.provider).to.equal('google');
      expect(out.assetIds).to.deep.equal(recorder.assets.map((a) => a.id));
    });

    it('uses the model given, and reports a refused key', async () => {
      await googleRun({ prompt: 'p', model: 'imagen-4.0-fast' }, ctx({ GOOGLE_API_BASE_URL: google.url }, { GOOGLE_API_KEY: 'g-key' }));
      expect(google.requests[0]?.url).to.equal('/models/imagen-4.0-fast:predict');
      const err = await rejection(googleRun({ prompt: 'p' }, ctx({ GOOGLE_API_BASE_URL: google.url }, { GOOGLE_API_KEY: 'bad' })));
      expect(err).to.be.instanceOf(AgentError);
      expect(err.message).to.contain('Google Imagen answered HTTP 403: API key not valid. Please pass a valid API key.');
    });
  });
});
