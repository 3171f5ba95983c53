import { expect } from 'chai';
import { AgentError, CancelledError, MissingSecretError, OutputTooLargeError, RetryLaterError, ValidationError } from '../../lib/index.js';
import { startFakeN8n, type FakeServer } from '../../test/support/fakes.js';
import { catalogAgent, loopbackHttp, type BoundAgent } from '../test-catalog.js';
import { rejection, testContext } from '../test-context.js';
import { sendJson, startTestServer, type TestServer } from '../test-http.js';
import type { AgentContext } from '../types.js';
import { HttpConfig, httpImplementation } from './http.js';

describe('http implementation', () => {
  let hook: FakeServer;
  before(async () => {
    hook = await startFakeN8n();
  });
  after(async () => {
    await hook.close();
  });
  beforeEach(() => {
    hook.requests.length = 0;
    hook.script.length = 0;
  });
  const ctx = (overrides: Partial<AgentContext> = {}): AgentContext =>
    testContext({ http: loopbackHttp(), idempotencyKey: 'run-1.publish.1', ...overrides });
  const run = (input: unknown, config: unknown = {}, context = ctx()) => httpImplementation.run(input, context, HttpConfig.parse(config));

  it('sends method, query, JSON body and the idempotency key; returns status, headers and body', async () => {
    const out = await run({ method: 'post', url: `${hook.url}/hook`, query: { a: 1, b: 'x y' }, headers: { 'X-Trace': 't1' }, body: { brief: 'spring' } });
    expect(out).to.deep.include({ status: 200 });
    expect((out as { body: unknown }).body).to.deep.equal({ ok: true, received: { brief: 'spring' }, executionId: '1' });
    expect((out as { headers: Record<string, string> }).headers['content-type']).to.match(/json/);
    const [request] = hook.requests;
    expect(request?.method).to.equal('POST');
    expect(request?.url).to.equal('/hook?a=1&b=x+y');
    expect(request?.headers['idempotency-key']).to.equal('run-1.publish.1');
    expect(request?.headers['x-trace']).to.equal('t1');
  });

  it('defaults to POST with a body and GET without', async () => {
    await run({ url: `${hook.url}/a`, payload: { x: 1 } });
    await rejection(run({ url: `${hook.url}/b` }));
    expect(hook.requests.map((r) => `${r.method} ${r.url} ${r.body}`)).to.deep.equal(['POST /a {"x":1}', 'GET /b ']);
  });

  it('fails a non-2xx answer with AgentError, unless okStatus lists it', async () => {
    hook.script.push({ status: 404, body: { message: 'no such workflow' } });
    const err = await rejection(run({ url: `${hook.url}/hook`, body: {} }));
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.equal(`POST ${hook.url}/hook answered HTTP 404: {"message":"no such workflow"}`);
    hook.script.push({ status: 404, body: { message: 'gone' } });
    expect(await run({ url: `${hook.url}/hook`, body: {}, okStatus: [404] })).to.deep.include({ status: 404, body: { message: 'gone' } });
    hook.script.push({ status: 409, body: {} });
    expect(await run({ url: `${hook.url}/hook`, body: {} }, { okStatus: [409] })).to.deep.include({ status: 409 });
  });

  it('turns 429 and 5xx into RetryLaterError honouring Retry-After (seconds or HTTP-date)', async () => {
    hook.script.push({ status: 429, headers: { 'retry-after': '7' } });
    const limited = await rejection(run({ url: `${hook.url}/hook`, body: {} }));
    expect(limited).to.be.instanceOf(RetryLaterError);
    expect((limited as RetryLaterError).retryAfterMs).to.equal(7000);
    hook.script.push({ status: 503, headers: { 'retry-after': new Date(Date.now() + 20_000).toUTCString() } });
    const down = await rejection(run({ url: `${hook.url}/hook`, body: {} }));
    expect(down).to.be.instanceOf(RetryLaterError);
    expect((down as RetryLaterError).retryAfterMs).to.be.within(18_000, 20_000);
  });

  it('takes url, method and headers from config, and header values from secrets', async () => {
    const config = { url: `${hook.url}/fixed`, method: 'POST', headers: { 'X-App': 'baton' }, headersFromSecrets: { Authorization: 'HOOK_TOKEN' } };
    await run({ body: { a: 1 } }, config, ctx({ secrets: { HOOK_TOKEN: 'Bearer s3cret' } }));
    expect(hook.requests[0]?.url).to.equal('/fixed');
    expect(hook.requests[0]?.headers).to.include({ 'x-app': 'baton', authorization: 'Bearer s3cret' });
    const fixed = await rejection(run({ url: `${hook.url}/other`, body: {} }, config, ctx({ secrets: { HOOK_TOKEN: 'x' } })));
    expect((fixed as ValidationError).field).to.equal('url');
    const missing = await rejection(run({ body: {} }, config));
    expect(missing).to.be.instanceOf(MissingSecretError);
    expect(missing.message).to.equal('secret HOOK_TOKEN is not set');
  });

  it('validates input, naming the field', async () => {
    for (const [input, field] of [
      [{ url: 'ftp://example.com/x' }, 'url'],
      [{ url: `${hook.url}/x`, headers: { 'Idempotency-Key': 'mine' } }, 'headers'],
      [{ url: `${hook.url}/x`, method: 'TRACE' }, 'method'],
      [{ url: `${hook.url}/x`, body: 1, payload: 2 }, 'payload'],
      [{ url: `${hook.url}/x`, timeoutMs: 10_000_000 }, 'timeoutMs'],
      [{ url: `${hook.url}/x`, method: 'GET', body: { a: 1 } }, 'body'],
      [{}, 'url'],
    ] as const) {
      const err = await rejection(run(input));
      expect(err, JSON.stringify(input)).to.be.instanceOf(ValidationError);
      expect((err as ValidationError).field, JSON.stringify(input)).to.equal(field);
    }
    expect(hook.requests).to.have.length(0);
  });

  describe('marketing-swarm (catalog entry)', () => {
    let swarm: BoundAgent;
    before(async () => {
      swarm = await catalogAgent('marketing-swarm');
    });
    const brief = { campaign: 'spring-launch', audience: 'returning customers', channels: ['mail', 'web'] };

    it('is an api agent bound to the http implementation', () => {
      expect(swarm.spec.type).to.equal('api');
      expect(swarm.implementation).to.equal(httpImplementation);
    });

    it("keeps today's {url, payload} shape: POSTs the brief with the idempotency key and returns the workflow's JSON", async () => {
      const out = await swarm.run({ url: `${hook.url}/webhook/campaign`, payload: brief }, ctx());
      expect(out).to.deep.include({ status: 200, body: { ok: true, received: brief, executionId: '1' } });
      expect(hook.requests[0]?.headers['idempotency-key']).to.equal('run-1.publish.1');
      expect(hook.requests[0]?.method).to.equal('POST');
    });

    it('falls back to MARKETING_SWARM_URL from the environment, then from the secrets', async () => {
      await swarm.run({ payload: brief }, ctx({ env: { MARKETING_SWARM_URL: `${hook.url}/from-env` } }));
      await swarm.run({ payload: brief }, ctx({ secrets: { MARKETING_SWARM_URL: `${hook.url}/from-secret` } }));
      expect(hook.requests.map((r) => r.url)).to.deep.equal(['/from-env', '/from-secret']);
      const none = await rejection(swarm.run({ payload: brief }, ctx()));
      expect(none.message).to.equal('url: required (or set the environment variable MARKETING_SWARM_URL or secret MARKETING_SWARM_URL)');
    });

    describe('against a scripted receiver', () => {
      let server: TestServer;
      let respond: Parameters<typeof startTestServer>[0];
      beforeEach(async () => {
        respond = (_req, res) => sendJson(res, 202, { accepted: true, id: 'job-1' });
        server = await startTestServer((req, res) => respond(req, res));
      });
      afterEach(async () => {
        await server.close();
      });
      const payload = { campaign: 'q3', summary: 'AAPL beat MSFT', tags: ['kpi', 'weekly'] };

      it('POSTs the payload as JSON with the query, extra headers and the step idempotency key', async () => {
        const out = await swarm.run(
          { url: `${server.baseUrl}/hooks/marketing?src=baton`, payload, headers: { 'X-Campaign': 'q3' } },
          ctx({ idempotencyKey: 'run-42.publish.1' }),
        );
        expect(out).to.deep.include({ status: 202, body: { accepted: true, id: 'job-1' } });
        expect(server.requests).to.have.length(1);
        const [request] = server.requests;
        expect(request?.method).to.equal('POST');
        expect(request?.url).to.equal('/hooks/marketing?src=baton');
        expect(request?.headers['idempotency-key']).to.equal('run-42.publish.1');
        expect(request?.headers['content-type']).to.match(/^application\/json/);
        expect(request?.headers['x-campaign']).to.equal('q3');
        expect(JSON.parse(request?.body ?? 'null')).to.deep.equal(payload);
      });

      it('sends the same Idempotency-Key on a repeated attempt of the same step', async () => {
        const input = { url: `${server.baseUrl}/hook`, payload };
        await swarm.run(input, ctx({ idempotencyKey: 'run-1.publish.1', attempt: 1 }));
        await swarm.run(input, ctx({ idempotencyKey: 'run-1.publish.1', attempt: 2 }));
        expect(server.requests.map((r) => r.headers['idempotency-key'])).to.deep.equal(['run-1.publish.1', 'run-1.publish.1']);
      });

      it('refuses a response above the entry\'s 64 KiB (maxBodyBytes) with OutputTooLargeError', async () => {
        respond = (_req, res) => {
          res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
          res.end('é'.repeat(40_000)); // 80 000 bytes
        };
        const err = await rejection(swarm.run({ url: `${server.baseUrl}/hook`, payload }, ctx()));
        expect(err).to.be.instanceOf(OutputTooLargeError);
      });

      it('turns a 500 into RetryLaterError, honouring Retry-After', async () => {
        respond = (_req, res) => sendJson(res, 500, { error: 'boom' }, { 'retry-after': '7' });
        const err = await rejection(swarm.run({ url: `${server.baseUrl}/hook`, payload }, ctx()));
        expect(err).to.be.instanceOf(RetryLaterError);
        expect((err as RetryLaterError).retryAfterMs).to.equal(7000);
      });

      it('turns a 404 into AgentError with the status and the body', async () => {
        respond = (_req, res) => sendJson(res, 404, { error: 'no such hook' });
        const err = await rejection(swarm.run({ url: `${server.baseUrl}/missing`, payload }, ctx()));
        expect(err).to.be.instanceOf(AgentError);
        expect(err.message).to.contain('404').and.to.contain('no such hook');
      });

      it('does not follow a redirect of its POST', async () => {
        respond = (_req, res) => {
          res.writeHead(307, { location: 'http://elsewhere.invalid/' });
          res.end();
        };
        const err = await rejection(swarm.run({ url: `${server.baseUrl}/hook`, payload }, ctx()));
        expect(err).to.be.instanceOf(AgentError);
        expect(err.message).to.contain('307');
        expect(server.requests).to.have.length(1);
      });

      it('turns a refused connection into RetryLaterError', async () => {
        const url = `${server.baseUrl}/hook`;
        await server.close();
        server = await startTestServer(() => undefined); // for afterEach
        const err = await rejection(swarm.run({ url, payload }, ctx()));
        expect(err).to.be.instanceOf(RetryLaterError);
      });

      it('throws CancelledError when the step signal aborts mid-request', async () => {
        respond = () => undefined; // never answers
        const controller = new AbortController();
        setTimeout(() => controller.abort(), 100);
        const err = await rejection(swarm.run({ url: `${server.baseUrl}/hook`, payload }, ctx({ signal: controller.signal })));
        expect(err).to.be.instanceOf(CancelledError);
      });

      it('rejects an invalid url (field url) and reserved headers (field headers) before sending', async () => {
        for (const url of ['not a url', 'ftp://example.com/file', 'file:///etc/passwd', 42]) {
          const err = await rejection(swarm.run({ url, payload }, ctx()));
          expect(err, String(url)).to.be.instanceOf(ValidationError);
          expect((err as ValidationError).field).to.equal('url');
        }
        const reserved = await rejection(swarm.run({ url: `${server.baseUrl}/hook`, payload, headers: { 'Idempotency-Key': 'mine' } }, ctx()));
        expect(reserved).to.be.instanceOf(ValidationError);
        expect((reserved as ValidationError).field).to.equal('headers');
        expect(server.requests).to.have.length(0);
      });
    });
  });
});
