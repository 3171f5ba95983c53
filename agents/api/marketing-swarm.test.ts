import { expect } from 'chai';
import { AgentError, CancelledError, RetryLaterError, ValidationError } from '../../lib/index.js';
import { testContext, rejection } from '../test-context.js';
import { sendJson, startTestServer, type TestServer } from '../test-http.js';
import { parseRetryAfter } from '../http-errors.js';
import { marketingSwarm } from './marketing-swarm.js';


describe('marketing-swarm agent', () => {
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

  it('is an api agent', () => {
    expect(marketingSwarm.type).to.equal('api');
  });

  it('POSTs the payload as JSON with the step idempotency key and returns status and body', async () => {
    const ctx = testContext({ idempotencyKey: 'run-42.publish.1' });
    const out = await marketingSwarm.run(
      { url: `${server.baseUrl}/hooks/marketing?src=baton`, payload, headers: { 'X-Campaign': 'q3' } },
      ctx,
    );

    expect(out).to.deep.equal({ status: 202, body: { accepted: true, id: 'job-1' }, truncated: false });
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
    await marketingSwarm.run(input, testContext({ idempotencyKey: 'run-1.publish.1', attempt: 1 }));
    await marketingSwarm.run(input, testContext({ idempotencyKey: 'run-1.publish.1', attempt: 2 }));
    expect(server.requests.map((r) => r.headers['idempotency-key'])).to.deep.equal(['run-1.publish.1', 'run-1.publish.1']);
  });

  it('returns a text body as text, cut at 64 KiB', async () => {
    respond = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('é'.repeat(40_000)); // 80 000 bytes
    };
    const out = (await marketingSwarm.run({ url: `${server.baseUrl}/hook`, payload }, testContext())) as {
      body: string;
      truncated: boolean;
    };
    expect(out.truncated).to.equal(true);
    expect(out.body).to.equal('é'.repeat(32_768)); // 65 536 bytes, no split character
  });

  it('turns a 500 into RetryLaterError, honouring Retry-After', async () => {
    respond = (_req, res) => sendJson(res, 500, { error: 'boom' }, { 'retry-after': '7' });
    const err = await rejection(marketingSwarm.run({ url: `${server.baseUrl}/hook`, payload }, testContext()));
    expect(err).to.be.instanceOf(RetryLaterError);
    expect((err as RetryLaterError).retryAfterMs).to.equal(7000);
  });

  it('turns a 404 into AgentError with the status', async () => {
    respond = (_req, res) => sendJson(res, 404, { error: 'no such hook' });
    const err = await rejection(marketingSwarm.run({ url: `${server.baseUrl}/missing`, payload }, testContext()));
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.contain('404').and.to.contain('no such hook');
  });

  it('does not follow redirects', async () => {
    respond = (_req, res) => {
      res.writeHead(307, { location: 'http://elsewhere.invalid/' });
      res.end();
    };
    const err = await rejection(marketingSwarm.run({ url: `${server.baseUrl}/hook`, payload }, testContext()));
    expect(err).to.be.instanceOf(AgentError);
    expect(server.requests).to.have.length(1);
  });

  it('turns a refused connection into RetryLaterError', async () => {
    const url = `${server.baseUrl}/hook`;
    await server.close();
    server = await startTestServer(() => undefined); // for afterEach
    const err = await rejection(marketingSwarm.run({ url, payload }, testContext()));
    expect(err).to.be.instanceOf(RetryLaterError);
  });

  it('throws CancelledError when the step signal aborts mid-request', async () => {
    respond = () => undefined; // never answers
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const err = await rejection(
      marketingSwarm.run({ url: `${server.baseUrl}/hook`, payload }, testContext({ signal: controller.signal })),
    );
    expect(err).to.be.instanceOf(CancelledError);
  });

  it('rejects an invalid url with ValidationError on field url', async () => {
    for (const url of ['not a url', 'ftp://example.com/file', 'file:///etc/passwd', 42]) {
      const err = await rejection(marketingSwarm.run({ url, payload }, testContext()));
      expect(err, String(url)).to.be.instanceOf(ValidationError);
      expect((err as ValidationError).field).to.equal('url');
    }
    expect(server.requests).to.have.length(0);
  });

  it('rejects a missing payload and reserved headers', async () => {
    const missing = await rejection(marketingSwarm.run({ url: `${server.baseUrl}/hook` }, testContext()));
    expect((missing as ValidationError).field).to.equal('payload');
    const reserved = await rejection(
      marketingSwarm.run({ url: `${server.baseUrl}/hook`, payload, headers: { 'Idempotency-Key': 'mine' } }, testContext()),
    );
    expect(reserved).to.be.instanceOf(ValidationError);
    expect((reserved as ValidationError).field).to.equal('headers');
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2024-01-01T00:00:00Z');
  it('reads delay-seconds', () => {
    expect(parseRetryAfter('2', now)).to.equal(2000);
    expect(parseRetryAfter(' 120 ', now)).to.equal(120_000);
  });
  it('reads an HTTP-date relative to now, never negative', () => {
    expect(parseRetryAfter('Mon, 01 Jan 2024 00:00:30 GMT', now)).to.equal(30_000);
    expect(parseRetryAfter('Sun, 31 Dec 2023 23:00:00 GMT', now)).to.equal(0);
  });
  it('ignores missing or invalid values', () => {
    expect(parseRetryAfter(undefined, now)).to.equal(undefined);
    expect(parseRetryAfter('soon', now)).to.equal(undefined);
    expect(parseRetryAfter('-5', now)).to.equal(undefined);
  });
});
