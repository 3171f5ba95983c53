/**
 * The image-generator modules' request/response handling against the fake providers.
 *
 * TEMPORARY HARNESS: until the worker-thread function runtime exists, `main.js` is evaluated in
 * this test process with a minimal stand-in for the isolate's `ctx` (`require('axios')` bridged to
 * `ctx.http`, `Buffer`, env, secrets that throw MissingSecretError when declared but unset). It is
 * not a runtime: no isolation, no limits. The end-to-end test through `ctx.functions.run` belongs
 * with the runtime integration.
 */
import { expect } from 'chai';
import { MissingSecretError, ValidationError, type OutboundHttp, type OutboundMethod } from '../../lib/index.js';
import { startFakeGoogle, startFakeOpenAI, PNG_SIGNATURE, type FakeServer } from '../../test/support/fakes.js';
import { loadModules, validateModuleInput, type StepModule } from '../modules.js';
import { rejection, testContext, type TestRecorder } from '../test-context.js';
import { fetchHttp } from '../test-outbound.js';
import type { AgentContext } from '../types.js';

type Main = (input: unknown, ctx: unknown) => Promise<unknown>;

/** An axios-shaped client over `http` (axios semantics: non-2xx throws unless validateStatus says otherwise). */
function axiosOver(http: OutboundHttp, signal: AbortSignal) {
  const request = async (method: OutboundMethod, url: string, data: unknown, config: { headers?: Record<string, string>; validateStatus?: (s: number) => boolean } = {}) => {
    const response = await http({ method, url, headers: config.headers ?? {}, body: data, timeoutMs: 10_000, signal });
    const ok = config.validateStatus ? config.validateStatus(response.status) : response.status >= 200 && response.status < 300;
    if (!ok) throw Object.assign(new Error(`Request failed with status code ${response.status}`), { response });
    return response;
  };
  return { post: (url: string, data: unknown, config?: { headers?: Record<string, string> }) => request('POST', url, data, config) };
}

/** Evaluate a module's main.js and call it with an isolate-like ctx built from `ctx`. */
function runModule(module: StepModule, input: unknown, ctx: AgentContext, declaredSecrets: string[]): Promise<unknown> {
  const main = new Function('Buffer', `${module.code}\nreturn main;`)(Buffer) as Main;
  const secrets = new Proxy({} as Record<string, string | undefined>, {
    get(_target, name) {
      if (typeof name !== 'string' || !declaredSecrets.includes(name)) return undefined;
      const value = ctx.secrets[name];
      if (value === undefined) throw new MissingSecretError(`secret ${name} is not set`);
      return value;
    },
  });
  const isolateCtx = {
    require: (name: string) => {
      if (name === 'axios') return axiosOver(ctx.http, ctx.signal);
      throw new Error(`ctx.require: ${name} is not allowed`);
    },
    env: ctx.env,
    secrets,
    assets: ctx.assets,
    deliverables: ctx.deliverables,
    idempotencyKey: ctx.idempotencyKey,
    log: () => undefined,
  };
  return main(input, isolateCtx);
}

describe('image generator modules (temporary harness, fake providers)', () => {
  let modules: ReadonlyMap<string, StepModule>;
  let openai: FakeServer;
  let google: FakeServer;
  let recorder: TestRecorder;
  before(async () => {
    modules = await loadModules();
    openai = await startFakeOpenAI({ apiKey: 'sk-openai' });
    google = await startFakeGoogle({ apiKey: 'g-key' });
  });
  after(async () => {
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
  const ctx = (env: Record<string, string>, secrets: Record<string, string | undefined>) =>
    testContext({ env, secrets, http: fetchHttp(), idempotencyKey: 'run-1.openai.1' }, recorder);

  describe('image-generator-openai@1', () => {
    const module = () => modules.get('image-generator-openai@1')!;

    it('posts the prompt, saves each PNG as an asset and creates an image-set deliverable', async () => {
      const out = (await runModule(module(), { prompt: 'a lighthouse at dawn', n: 2, size: '512x512' }, ctx({ OPENAI_BASE_URL: openai.url }, { OPENAI_API_KEY: 'sk-openai' }), [
        'OPENAI_API_KEY',
      ])) as { provider: string; prompt: string; assetIds: string[]; deliverableId: string };
      const [request] = openai.requests;
      expect(request?.url).to.equal('/images/generations');
      expect(request?.headers.authorization).to.equal('Bearer sk-openai');
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
      const err = await rejection(runModule(module(), { prompt: 'x' }, ctx({ OPENAI_BASE_URL: openai.url }, {}), ['OPENAI_API_KEY']));
      expect(err).to.be.instanceOf(MissingSecretError);
      expect(openai.requests).to.have.length(0);
    });

    it('reports the status and the API message, marking 429/5xx as retry later', async () => {
      openai.script.push({ status: 429, body: { error: { message: 'Rate limit reached for images' } } });
      const limited = await rejection(runModule(module(), { prompt: 'x' }, ctx({ OPENAI_BASE_URL: openai.url }, { OPENAI_API_KEY: 'sk-openai' }), ['OPENAI_API_KEY']));
      expect(limited.message).to.equal('OpenAI images answered HTTP 429 (retry later): Rate limit reached for images');
      const denied = await rejection(runModule(module(), { prompt: 'x' }, ctx({ OPENAI_BASE_URL: openai.url }, { OPENAI_API_KEY: 'wrong' }), ['OPENAI_API_KEY']));
      expect(denied.message).to.equal('OpenAI images answered HTTP 401: Incorrect API key provided');
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
    const module = () => modules.get('image-generator-google@1')!;

    it('posts to models/<model>:predict with x-goog-api-key and saves the predictions', async () => {
      const out = (await runModule(module(), { prompt: 'a red kite', n: 2 }, ctx({ GOOGLE_API_BASE_URL: google.url }, { GOOGLE_API_KEY: 'g-key' }), ['GOOGLE_API_KEY'])) as {
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
      await runModule(module(), { prompt: 'p', model: 'imagen-4.0-fast' }, ctx({ GOOGLE_API_BASE_URL: google.url }, { GOOGLE_API_KEY: 'g-key' }), ['GOOGLE_API_KEY']);
      expect(google.requests[0]?.url).to.equal('/models/imagen-4.0-fast:predict');
      const err = await rejection(runModule(module(), { prompt: 'p' }, ctx({ GOOGLE_API_BASE_URL: google.url }, { GOOGLE_API_KEY: 'bad' }), ['GOOGLE_API_KEY']));
      expect(err.message).to.equal('Google Imagen answered HTTP 403: API key not valid. Please pass a valid API key.');
    });
  });
});
