import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import { pino } from 'pino';
import {
  AgentError,
  CancelledError,
  MissingSecretError,
  OutputTooLargeError,
  RetryLaterError,
  TimedOutError,
  ValidationError,
  silentLogger,
  type OutboundHttp,
} from '../../lib/index.js';
import { loopbackHttp } from '../test-catalog.js';
import { rejection, testContext, type TestRecorder } from '../test-context.js';
import { createFunctionRuntime, type FunctionRuntime } from './runtime.js';

const limits = { timeoutMs: 5_000, memoryMb: 32 };
/** Bytes the server sends for `GET /bytes` (binary, not valid UTF-8). */
const PAYLOAD = randomBytes(64 * 1024);

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** The real outbound client (loopback allowed: the test server listens on 127.0.0.1). */
const http: OutboundHttp = loopbackHttp();

describe('function runtime (worker threads)', function () {
  this.timeout(30_000);
  let runtime: FunctionRuntime;
  let server: Server;
  let baseUrl: string;
  const received: Received[] = [];

  before(async () => {
    runtime = createFunctionRuntime({
      threads: 2,
      maxTimeoutMs: 20_000,
      maxMemoryMb: 64,
      outputMaxBytes: 64 * 1024,
      logger: silentLogger(),
    });
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        if (req.url === '/bytes') {
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': PAYLOAD.length });
          res.end(PAYLOAD);
        } else if (req.url?.startsWith('/echo')) {
          let json: unknown = null;
          try {
            json = body ? (JSON.parse(body) as unknown) : null;
          } catch {
            json = body;
          }
          const text = JSON.stringify({ method: req.method, url: req.url, json });
          res.writeHead(201, { 'content-type': 'application/json' });
          res.end(text);
        } else {
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'not here' }));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await runtime.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('runs an async main whose axios POSTs JSON with the idempotency key, and GETs exact bytes', async () => {
    const code = `
      async function main(input, ctx) {
        const axios = ctx.require('axios');
        const posted = await axios.post(input.base + '/echo', { hello: 'world', n: 1 }, {
          headers: { 'Idempotency-Key': ctx.idempotencyKey },
          params: { q: 'a b' },
        });
        const bytes = await axios.get(input.base + '/bytes', { responseType: 'arraybuffer' });
        const sha = ctx.require('crypto').createHash('sha256').update(bytes.data).digest('hex');
        return { status: posted.status, data: posted.data, isBuffer: Buffer.isBuffer(bytes.data), length: bytes.data.length, sha };
      }`;
    const ctx = testContext({ http, idempotencyKey: 'run-1.step-1.0' });
    const result = (await runtime.run(code, { base: baseUrl }, limits, ctx)) as Record<string, unknown>;
    expect(result.status).to.equal(201);
    expect(result.data).to.deep.equal({ method: 'POST', url: '/echo?q=a+b', json: { hello: 'world', n: 1 } });
    expect(result.isBuffer).to.equal(true);
    expect(result.length).to.equal(PAYLOAD.length);
    expect(result.sha).to.equal(createHash('sha256').update(PAYLOAD).digest('hex'));
    const post = received.find((r) => r.method === 'POST' && r.url.startsWith('/echo'));
    expect(post?.headers['idempotency-key']).to.equal('run-1.step-1.0');
    expect(post?.headers['content-type']).to.equal('application/json');
  });

  it('rejects a non-2xx answer with .response.status, unless validateStatus accepts it', async () => {
    const code = `
      async function main(input, ctx) {
        const axios = ctx.require('axios').create({ baseURL: input.base });
        let caught;
        try { await axios.get('/nope'); } catch (err) { caught = err; }
        const accepted = await axios.get('/nope', { validateStatus: () => true });
        return { name: caught.name, status: caught.status, responseStatus: caught.response.status,
          body: caught.response.data, code: caught.code, accepted: accepted.status };
      }`;
    const result = await runtime.run(code, { base: baseUrl }, limits, testContext({ http }));
    expect(result).to.deep.equal({
      name: 'AxiosError',
      status: 404,
      responseStatus: 404,
      body: { error: 'not here' },
      code: 'ERR_BAD_REQUEST',
      accepted: 404,
    });
  });

  it('offers the axios verbs, request(config), a callable instance and create(defaults)', async () => {
    const code = `
      async function main(input, ctx) {
        const axios = ctx.require('axios');
        const api = axios.create({ baseURL: input.base, headers: { 'X-Team': 'baton' } });
        const out = [];
        out.push((await api.put('/echo/put', 'plain text', { headers: { 'content-type': 'text/plain' } })).data.method);
        out.push((await api.patch('/echo/patch', Buffer.from('{"b":1}'), { headers: { 'content-type': 'application/json' } })).data.json);
        out.push((await api.delete('/echo/delete')).data.method);
        out.push((await api.head('/echo/head')).status);
        out.push((await api.request({ url: '/echo/req', method: 'post', data: { a: [1, 2] }, params: { ids: [1, 2] } })).data);
        out.push((await axios({ url: input.base + '/echo/call', responseType: 'text' })).data.length > 0);
        return out;
      }`;
    const result = await runtime.run(code, { base: baseUrl }, limits, testContext({ http }));
    expect(result).to.deep.equal([
      'PUT',
      { b: 1 },
      'DELETE',
      201,
      { method: 'POST', url: '/echo/req?ids%5B%5D=1&ids%5B%5D=2', json: { a: [1, 2] } },
      true,
    ]);
    const put = received.find((r) => r.url === '/echo/put');
    expect(put?.body).to.equal('plain text');
    expect(put?.headers['x-team']).to.equal('baton');
  });

  it('hands host errors to the isolate with name, message and code', async () => {
    const denied: OutboundHttp = () => {
      const err = Object.assign(new Error('destination 10.0.0.1 is not allowed'), { name: 'OutboundDeniedError', code: 'OUTBOUND_DENIED' });
      return Promise.reject(err);
    };
    const code = `
      async function main(input, ctx) {
        try { await ctx.require('axios').get('http://10.0.0.1/'); } catch (err) { return [err.name, err.code, err.message]; }
      }`;
    const result = await runtime.run(code, null, limits, testContext({ http: denied }));
    expect(result).to.deep.equal(['OutboundDeniedError', 'OUTBOUND_DENIED', 'destination 10.0.0.1 is not allowed']);
  });

  it('refuses modules outside the allow-list, naming the list', async () => {
    const err = await rejection(runtime.run('function main(input, ctx) { return ctx.require("fs"); }', null, limits, testContext()));
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.contain('ctx.require("fs"): not allowed; allowed modules: axios, codekit, crypto, url');
  });

  it('keeps the caller’s event loop and the other thread free while a function spins for its 10 s limit', async function () {
    this.timeout(20_000);
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const started = Date.now();
    const spinning = rejection(runtime.run('function main() { while (true) {} }', null, { timeoutMs: 10_000, memoryMb: 16 }, testContext()));
    await new Promise((resolve) => setTimeout(resolve, 200)); // the spin has started
    const t0 = Date.now();
    const quick = await runtime.run('function main(input) { return input + 1; }', 41, limits, testContext());
    const quickMs = Date.now() - t0;
    const err = await spinning;
    delay.disable();
    const elapsed = Date.now() - started;
    expect(quick).to.equal(42);
    expect(quickMs, 'quick call on the other thread').to.be.below(2_000);
    expect(err).to.be.instanceOf(TimedOutError);
    expect(elapsed).to.be.within(9_900, 12_000);
    const p99Ms = delay.percentile(99) / 1e6;
    expect(p99Ms, 'event-loop delay p99 (ms)').to.be.below(200);
  });

  it('stops a spinning function at timeoutMs 2000 within 3 s, and on abort quickly; later calls still work', async () => {
    let started = Date.now();
    const timedOut = await rejection(runtime.run('function main() { for (;;) {} }', null, { timeoutMs: 2_000, memoryMb: 16 }, testContext()));
    expect(timedOut).to.be.instanceOf(TimedOutError);
    expect(timedOut.message).to.equal('function exceeded its time limit of 2000 ms');
    expect(Date.now() - started).to.be.below(3_000);

    const controller = new AbortController();
    const running = rejection(runtime.run('function main() { for (;;) { try { for (;;) {} } catch (e) {} } }', null, limits, testContext({ signal: controller.signal })));
    await new Promise((resolve) => setTimeout(resolve, 300));
    started = Date.now();
    controller.abort();
    const cancelled = await running;
    expect(cancelled).to.be.instanceOf(CancelledError);
    expect(Date.now() - started).to.be.below(1_000);

    expect(await runtime.run('function main() { return "alive"; }', null, limits, testContext())).to.equal('alive');
  });

  it('cancels an abort that arrives while main awaits a host call', async () => {
    const controller = new AbortController();
    const hanging: OutboundHttp = (request) =>
      new Promise((_resolve, reject) => {
        request.signal?.addEventListener('abort', () => reject(new CancelledError('request cancelled')));
      });
    const running = rejection(
      runtime.run('async function main(i, ctx) { await ctx.require("axios").get("http://x.test/"); }', null, limits, testContext({ http: hanging, signal: controller.signal })),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    controller.abort();
    expect(await running).to.be.instanceOf(CancelledError);
  });

  it('counts time awaiting host calls toward the deadline', async () => {
    const slow: OutboundHttp = (request) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve({ status: 200, headers: {}, data: 'late' }), 5_000);
        request.signal?.addEventListener('abort', () => clearTimeout(timer));
      });
    let budgetMs = 0;
    const spy: OutboundHttp = (request) => {
      budgetMs = request.timeoutMs;
      return slow(request);
    };
    const started = Date.now();
    const err = await rejection(
      runtime.run('async function main(i, ctx) { return (await ctx.require("axios").get("http://x.test/")).data; }', null, { timeoutMs: 500, memoryMb: 16 }, testContext({ http: spy })),
    );
    expect(err).to.be.instanceOf(TimedOutError);
    expect(Date.now() - started).to.be.below(1_500);
    expect(budgetMs).to.be.within(1, 500);
  });

  it('fails an output above outputMaxBytes with OUTPUT_TOO_LARGE', async () => {
    const err = await rejection(runtime.run('function main() { return "x".repeat(70 * 1024); }', null, limits, testContext()));
    expect(err).to.be.instanceOf(OutputTooLargeError);
    expect((err as OutputTooLargeError).code).to.equal('OUTPUT_TOO_LARGE');
  });

  it('turns an error the code marks retryable into RetryLaterError (with retryAfterMs), others into AgentError', async () => {
    const transient = await rejection(
      runtime.run("function main() { var e = new Error('upstream 503'); e.retryable = true; e.retryAfterMs = 1500; throw e; }", null, limits, testContext()),
    );
    expect(transient).to.be.instanceOf(RetryLaterError);
    expect((transient as RetryLaterError).retryAfterMs).to.equal(1500);
    expect(transient.message).to.contain('upstream 503');
    const final = await rejection(runtime.run("function main() { throw new Error('bad input') }", null, limits, testContext()));
    expect(final).to.be.instanceOf(AgentError);
  });

  it('fails a memory bomb with an AgentError about memory, and keeps working', async () => {
    const code = 'function main() { const keep = []; for (;;) keep.push(new Array(100000).fill(1)); }';
    const err = await rejection(runtime.run(code, null, { timeoutMs: 10_000, memoryMb: 16 }, testContext()));
    expect(err).to.be.instanceOf(AgentError);
    expect(err.message).to.match(/memory/);
    expect(await runtime.run('function main(i) { return i; }', 'ok', { timeoutMs: 2_000, memoryMb: 16 }, testContext())).to.equal('ok');
  });

  it('validates limits against the configured maxima', async () => {
    const tooLong = await rejection(runtime.run('function main() {}', null, { timeoutMs: 20_001, memoryMb: 16 }, testContext()));
    expect(tooLong).to.be.instanceOf(ValidationError);
    expect((tooLong as ValidationError).field).to.equal('limits.timeout');
    const tooBig = await rejection(runtime.run('function main() {}', null, { timeoutMs: 1_000, memoryMb: 65 }, testContext()));
    expect((tooBig as ValidationError).field).to.equal('limits.memoryMb');
  });

  it('provides crypto, Buffer and URL like Node', async () => {
    const code = `
      function main(input, ctx) {
        const crypto = ctx.require('crypto');
        const { URL, URLSearchParams } = ctx.require('url');
        const u = new URL('../c/d?x=1&x=2&y=%C3%A9#frag', 'https://user:pw@EXAMPLE.com:8443/a/b/');
        u.searchParams.append('z', 'a b&c');
        u.pathname = '/p q';
        const qs = new URLSearchParams('?b=2&a=1&a=0');
        qs.sort();
        let invalid = null;
        try { new URL('not a url'); } catch (err) { invalid = err.name + ': ' + err.message; }
        const text = 'héllo wörld ✓';
        return {
          sha256: crypto.createHash('sha256').update('abc').digest('hex'),
          sha256Chunks: crypto.createHash('sha256').update('a').update(Buffer.from('bc')).digest('base64'),
          hmac: crypto.createHmac('sha256', 'key').update('The quick brown fox jumps over the lazy dog').digest('hex'),
          uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID()),
          random: crypto.randomBytes(16).length,
          base64: Buffer.from(text).toString('base64'),
          hex: Buffer.from(text, 'utf8').toString('hex'),
          roundTrip: Buffer.from(Buffer.from(text).toString('base64'), 'base64').toString('utf8') === text,
          fromHex: Buffer.from('deadbeef', 'hex').toString('base64url'),
          byteLength: Buffer.byteLength(text),
          concat: Buffer.concat([Buffer.from([1, 2]), Buffer.from('AwQ=', 'base64')]).toJSON().data,
          indexed: Buffer.from('AB')[1],
          isUint8Array: Buffer.from('x') instanceof Uint8Array,
          url: [u.href, u.origin, u.host, u.hostname, u.port, u.pathname, u.search, u.hash, u.username],
          params: [u.searchParams.getAll('x'), u.searchParams.get('y'), qs.toString(), [...qs.keys()]],
          invalid,
          canParse: [URL.canParse('https://x.test'), URL.canParse('nope')],
        };
      }`;
    const result = (await runtime.run(code, null, limits, testContext())) as Record<string, unknown>;
    const text = 'héllo wörld ✓';
    expect(result).to.deep.equal({
      sha256: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
      sha256Chunks: createHash('sha256').update('abc').digest('base64'),
      hmac: 'f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8',
      uuid: true,
      random: 16,
      base64: Buffer.from(text).toString('base64'),
      hex: Buffer.from(text).toString('hex'),
      roundTrip: true,
      fromHex: '3q2-7w',
      byteLength: Buffer.byteLength(text),
      concat: [1, 2, 3, 4],
      indexed: 66,
      isUint8Array: true,
      url: [
        'https://user:pw@example.com:8443/p%20q?x=1&x=2&y=%C3%A9&z=a+b%26c#frag',
        'https://example.com:8443',
        'example.com:8443',
        'example.com',
        '8443',
        '/p%20q',
        '?x=1&x=2&y=%C3%A9&z=a+b%26c',
        '#frag',
        'user',
      ],
      params: [['1', '2'], 'é', 'a=1&a=0&b=2', ['a', 'a', 'b']],
      invalid: 'TypeError: Invalid URL',
      canParse: [true, false],
    });
  });

  it('shows env and declared secrets; a declared but unstored secret fails with MISSING_SECRET', async () => {
    const ctx = testContext({ env: { REGION: 'eu' }, secrets: { API_KEY: 's3cret', OTHER: undefined } });
    const code = `
      function main(input, ctx) {
        let undeclared;
        try { ctx.secrets.NOPE; } catch (err) { undeclared = err.message; }
        return { env: ctx.env, frozen: Object.isFrozen(ctx.env), key: ctx.secrets.API_KEY, undeclared,
          run: ctx.run, attempt: ctx.attempt, stepId: ctx.stepId, idempotencyKey: ctx.idempotencyKey };
      }`;
    expect(await runtime.run(code, null, limits, ctx)).to.deep.equal({
      env: { REGION: 'eu' },
      frozen: true,
      key: 's3cret',
      undeclared: 'ctx.secrets.NOPE: not declared; declared secrets: API_KEY, OTHER',
      run: { id: 'run-test', definition: { slug: 'test', version: 1 } },
      attempt: 1,
      stepId: 'step-test',
      idempotencyKey: 'run-test.step-test.1',
    });
    const err = await rejection(runtime.run('function main(i, ctx) { return ctx.secrets.OTHER; }', null, limits, ctx));
    expect(err).to.be.instanceOf(MissingSecretError);
    expect((err as MissingSecretError).code).to.equal('MISSING_SECRET');
    expect(err.message).to.contain('OTHER');
  });

  it('saves assets, creates deliverables, reports progress and forwards logs to the host', async () => {
    const recorder: TestRecorder = { assets: [], deliverables: [], progress: [] };
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
        done();
      },
    });
    const ctx = testContext({ logger: pino({ level: 'info' }, sink) }, recorder);
    const code = `
      async function main(input, ctx) {
        console.log('starting', { n: 1 });
        await ctx.progress(0.5, 'half way');
        const png = Buffer.from(input.png, 'base64');
        const asset = await ctx.assets.saveBuffer(png, { name: 'a.png', mimeType: 'image/png' });
        const deliverable = await ctx.deliverables.create({ title: 'Images', kind: 'image-set', content: { count: 1 }, assetIds: [asset.id] });
        ctx.log('done', asset.bytes);
        return { asset, deliverable };
      }`;
    const png = randomBytes(300);
    const result = (await runtime.run(code, { png: png.toString('base64') }, limits, ctx)) as {
      asset: { id: string; bytes: number; sha256: string };
      deliverable: { id: string };
    };
    expect(recorder.progress).to.deep.equal([{ fraction: 0.5, message: 'half way' }]);
    expect(recorder.assets).to.have.length(1);
    expect(Buffer.from(recorder.assets[0]!.data).equals(png)).to.equal(true);
    expect(recorder.assets[0]).to.include({ name: 'a.png', mimeType: 'image/png', id: result.asset.id });
    expect(result.asset).to.deep.equal({ id: recorder.assets[0]!.id, bytes: 300, sha256: createHash('sha256').update(png).digest('hex') });
    expect(recorder.deliverables).to.deep.equal([
      { id: result.deliverable.id, title: 'Images', kind: 'image-set', content: { count: 1 }, assetIds: [result.asset.id] },
    ]);
    expect(lines.map((l) => l.line)).to.deep.equal(['starting {"n":1}', 'done 300']);
  });

  it('stops catastrophic regex backtracking at the time limit too', async () => {
    const started = Date.now();
    const err = await rejection(
      runtime.run('function main() { return /(a+)+b/.test("a".repeat(40)); }', null, { timeoutMs: 500, memoryMb: 16 }, testContext()),
    );
    expect(err).to.be.instanceOf(TimedOutError);
    expect(Date.now() - started).to.be.below(1_500);
  });

  it('queues calls FIFO when every thread is busy', async () => {
    const order: number[] = [];
    const calls = [1, 2, 3, 4, 5].map((n) =>
      runtime.run('function main(n) { const end = Date.now() + 50; while (Date.now() < end) {} return n; }', n, limits, testContext()).then((v) => {
        order.push(v as number);
      }),
    );
    await Promise.all(calls);
    expect([...order].sort()).to.deep.equal([1, 2, 3, 4, 5]);
    expect(order.indexOf(5)).to.be.above(order.indexOf(1));
  });
});
