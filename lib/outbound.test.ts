import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import {
  CancelledError,
  ConfigError,
  OutboundDeniedError,
  OutputTooLargeError,
  RetryLaterError,
  ValidationError,
  createOutboundHttp,
  deniedAddressRange,
  isOutboundAllowEntry,
  loadConfig,
  type OutboundResolver,
} from './index.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A real local server; `routes` answer by path. */
async function startServer(routes: Record<string, (req: IncomingMessage, res: ServerResponse, body: string) => void>) {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const route = routes[path];
      if (route) route(req, res, body);
      else res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'no route' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    seen,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const LOOPBACK = { allow: ['127.0.0.0/8', '::1/128'] };

describe('outbound policy', function () {
  let server: Awaited<ReturnType<typeof startServer>>;

  before(async function () {
    server = await startServer({
      '/json': (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'),
      '/echo': (req, res, body) =>
        res.writeHead(201, { 'content-type': 'application/json', 'x-multi': ['a', 'b'] }).end(
          JSON.stringify({ method: req.method, url: req.url, body, headers: req.headers }),
        ),
      '/bytes': (_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(Buffer.from([0, 1, 2, 255])),
      '/gzip': (_req, res) =>
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync('{"z":1}')),
      '/big': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('x'.repeat(1000));
        res.end('y'.repeat(1000)); // chunked: no Content-Length to refuse early
      },
      '/slow': (_req, res) => {
        setTimeout(() => res.writeHead(200).end('late'), 2000).unref();
      },
      '/status/500': (_req, res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('boom'),
      '/to-metadata': (_req, res) => res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end(),
      '/to-json': (_req, res) => res.writeHead(302, { location: '/json' }).end(),
      '/to-echo-307': (_req, res) => res.writeHead(307, { location: '/echo' }).end(),
      '/to-file': (_req, res) => res.writeHead(302, { location: 'file:///etc/passwd' }).end(),
      '/loop': (_req, res) => res.writeHead(302, { location: '/loop' }).end(),
    });
  });
  after(async function () {
    await server.close();
  });

  it('reaches a local server only when loopback is allowed', async function () {
    const allowed = createOutboundHttp(LOOPBACK);
    const ok = await allowed({ method: 'GET', url: `${server.url}/json`, timeoutMs: 2000 });
    expect(ok).to.deep.include({ status: 200, data: { ok: true } });
    const denied = createOutboundHttp({ allow: [] });
    const before = server.seen.length;
    const err = await denied({ method: 'GET', url: `${server.url}/json`, timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(OutboundDeniedError);
    expect((err as Error).message).to.match(/127\.0\.0\.1.*loopback/);
    expect(server.seen.length, 'the server was never contacted').to.equal(before);
  });

  for (const url of [
    'http://127.0.0.1/',
    'http://localhost:1/',
    'http://[::1]/',
    'http://169.254.169.254/latest/meta-data/',
    'http://10.0.0.1/',
    'http://172.16.5.4/',
    'http://192.168.1.1/',
    'http://100.64.0.1/',
    'http://0.0.0.0/',
    'http://0x7f000001/',
    'http://2130706433/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:a9fe:a9fe]/',
    'http://[fd00:ec2::254]/',
    'http://[fe80::1]/',
    'http://224.0.0.1/',
    'http://metadata.google.internal/computeMetadata/v1/',
  ]) {
    it(`denies ${url} by default`, async function () {
      const http = createOutboundHttp({ allow: [] });
      const err = await http({ method: 'GET', url, timeoutMs: 2000 }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(OutboundDeniedError);
      expect((err as OutboundDeniedError).code).to.equal('OUTBOUND_DENIED');
    });
  }

  it('denies a public-looking name that resolves to loopback, checked at connect time', async function () {
    const names: string[] = [];
    const resolve: OutboundResolver = async (hostname) => {
      names.push(hostname);
      return [{ address: '127.0.0.1', family: 4 }];
    };
    const http = createOutboundHttp({ allow: [] }, { resolve });
    const err = await http({ method: 'GET', url: `http://api.example.com:${server.port}/json`, timeoutMs: 2000 }).catch(
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(OutboundDeniedError);
    expect((err as Error).message).to.contain('api.example.com (127.0.0.1)');
    expect(names).to.deep.equal(['api.example.com']);
  });

  it('denies a name when any of its addresses is private (rebinding)', async function () {
    const resolve: OutboundResolver = async () => [
      { address: '93.184.216.34', family: 4 },
      { address: '10.1.2.3', family: 4 },
    ];
    const http = createOutboundHttp({ allow: [] }, { resolve });
    const err = await http({ method: 'GET', url: 'http://mixed.example.com/', timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(OutboundDeniedError);
  });

  it('allows a host by exact name and by *.suffix, whatever it resolves to', async function () {
    const resolve: OutboundResolver = async () => [{ address: '127.0.0.1', family: 4 }];
    const http = createOutboundHttp({ allow: ['fake-openai.test', '*.internal.example'] }, { resolve });
    for (const host of ['fake-openai.test', 'a.b.internal.example']) {
      const ok = await http({ method: 'GET', url: `http://${host}:${server.port}/json`, timeoutMs: 2000 });
      expect(ok.status).to.equal(200);
    }
    const err = await http({ method: 'GET', url: `http://internal.example:${server.port}/json`, timeoutMs: 2000 }).catch(
      (e: unknown) => e,
    );
    expect(err, '*.suffix matches subdomains only').to.be.instanceOf(OutboundDeniedError);
  });

  it('allows addresses by CIDR, and only inside it', async function () {
    const inside = createOutboundHttp({ allow: ['127.0.0.0/30'] });
    expect((await inside({ method: 'GET', url: `${server.url}/json`, timeoutMs: 2000 })).status).to.equal(200);
    const outside = createOutboundHttp({ allow: ['127.0.0.4/30', '10.0.0.0/8'] });
    const err = await outside({ method: 'GET', url: `${server.url}/json`, timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(OutboundDeniedError);
    expect(() => createOutboundHttp({ allow: ['not a host!'] })).to.throw(ValidationError, /allow/);
  });

  it('refuses a redirect from an allowed server to a denied address', async function () {
    const http = createOutboundHttp(LOOPBACK);
    const err = await http({ method: 'GET', url: `${server.url}/to-metadata`, timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(OutboundDeniedError);
    expect((err as Error).message).to.contain('169.254.169.254');
    const file = await http({ method: 'GET', url: `${server.url}/to-file`, timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(file).to.be.instanceOf(OutboundDeniedError);
  });

  it('follows redirects for GET up to maxRedirects; POST follows only 307/308', async function () {
    const http = createOutboundHttp(LOOPBACK);
    expect(await http({ method: 'GET', url: `${server.url}/to-json`, timeoutMs: 2000 })).to.deep.include({ status: 200, data: { ok: true } });
    expect((await http({ method: 'GET', url: `${server.url}/to-json`, timeoutMs: 2000, maxRedirects: 0 })).status).to.equal(302);
    expect((await http({ method: 'GET', url: `${server.url}/loop`, timeoutMs: 2000, maxRedirects: 3 })).status).to.equal(302);
    expect((await http({ method: 'POST', url: `${server.url}/to-json`, body: { a: 1 }, timeoutMs: 2000 })).status).to.equal(302);
    const kept = await http({ method: 'POST', url: `${server.url}/to-echo-307`, body: { a: 1 }, timeoutMs: 2000 });
    expect(kept.status).to.equal(201);
    expect(kept.data).to.deep.include({ method: 'POST', body: '{"a":1}' });
  });

  it('sends JSON, text and bytes bodies, query parameters, headers and the user agent', async function () {
    const http = createOutboundHttp(LOOPBACK, { userAgent: 'baton-test/1' });
    const json = await http({
      method: 'POST',
      url: `${server.url}/echo?x=1`,
      query: { q: 'a b&c', n: 2, t: true },
      headers: { 'X-Trace': 'abc' },
      body: { hello: 'world' },
      timeoutMs: 2000,
    });
    const data = json.data as { url: string; body: string; headers: Record<string, string> };
    expect(json.status).to.equal(201);
    expect(json.headers['x-multi']).to.equal('a, b');
    expect(data.url).to.equal('/echo?x=1&q=a+b%26c&n=2&t=true');
    expect(data.body).to.equal('{"hello":"world"}');
    expect(data.headers).to.include({ 'content-type': 'application/json', 'x-trace': 'abc', 'user-agent': 'baton-test/1' });
    const text = await http({ method: 'PUT', url: `${server.url}/echo`, body: 'plain', headers: { 'content-type': 'text/csv' }, timeoutMs: 2000 });
    expect((text.data as { body: string; headers: Record<string, string> }).headers['content-type']).to.equal('text/csv');
    const bytes = await http({ method: 'PATCH', url: `${server.url}/echo`, body: new Uint8Array([104, 105]), timeoutMs: 2000 });
    expect((bytes.data as { body: string }).body).to.equal('hi');
  });

  it('returns arraybuffer as Uint8Array, text as string, decodes gzip, and never throws on a status', async function () {
    const http = createOutboundHttp(LOOPBACK);
    const bin = await http({ method: 'GET', url: `${server.url}/bytes`, responseType: 'arraybuffer', timeoutMs: 2000 });
    expect(bin.data).to.be.instanceOf(Uint8Array);
    expect([...(bin.data as Uint8Array)]).to.deep.equal([0, 1, 2, 255]);
    const text = await http({ method: 'GET', url: `${server.url}/json`, responseType: 'text', timeoutMs: 2000 });
    expect(text.data).to.equal('{"ok":true}');
    expect((await http({ method: 'GET', url: `${server.url}/gzip`, timeoutMs: 2000 })).data).to.deep.equal({ z: 1 });
    expect(await http({ method: 'GET', url: `${server.url}/status/500`, timeoutMs: 2000 })).to.deep.include({ status: 500, data: 'boom' });
    const head = await http({ method: 'HEAD', url: `${server.url}/json`, timeoutMs: 2000 });
    expect(head).to.deep.include({ status: 200, data: '' });
  });

  it('caps the streamed body at maxBodyBytes', async function () {
    const http = createOutboundHttp(LOOPBACK);
    const err = await http({ method: 'GET', url: `${server.url}/big`, maxBodyBytes: 1500, timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(OutputTooLargeError);
    const ok = await http({ method: 'GET', url: `${server.url}/big`, maxBodyBytes: 2000, timeoutMs: 2000 });
    expect((ok.data as string).length).to.equal(2000);
  });

  it('maps timeouts and refused connections to RetryLaterError, aborts to CancelledError', async function () {
    const http = createOutboundHttp(LOOPBACK);
    const started = Date.now();
    const slow = await http({ method: 'GET', url: `${server.url}/slow`, timeoutMs: 200 }).catch((e: unknown) => e);
    expect(slow).to.be.instanceOf(RetryLaterError);
    expect((slow as Error).message).to.contain('timed out after 200 ms');
    expect(Date.now() - started).to.be.lessThan(1500);
    const refused = await http({ method: 'GET', url: 'http://127.0.0.1:1/', timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(RetryLaterError);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const cancelled = await http({ method: 'GET', url: `${server.url}/slow`, timeoutMs: 5000, signal: controller.signal }).catch(
      (e: unknown) => e,
    );
    expect(cancelled).to.be.instanceOf(CancelledError);
  });

  it('refuses URLs that are not absolute http(s), naming the field', async function () {
    const http = createOutboundHttp(LOOPBACK);
    for (const url of ['/relative', 'ftp://example.com/']) {
      const err = await http({ method: 'GET', url, timeoutMs: 1000 }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(ValidationError);
      expect((err as ValidationError).field).to.equal('url');
    }
  });

  it('refuses header values with CR/LF as invalid headers', async function () {
    const http = createOutboundHttp(LOOPBACK);
    const err = await http({ method: 'GET', url: `${server.url}/json`, headers: { 'x-a': 'v\r\nInjected: 1' }, timeoutMs: 1000 }).catch(
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(ValidationError);
    expect((err as ValidationError).field).to.equal('headers');
  });

  it('checks OUTBOUND_ALLOW entries when the configuration loads', function () {
    expect(['10.0.0.0/8', '::1/128', '192.168.1.7', '[::1]', 'localhost', '*.corp.example', 'api_1.local'].every(isOutboundAllowEntry)).to.equal(true);
    expect(['bad host', 'http://x/', '*', '10.0.0.0/33'].some(isOutboundAllowEntry)).to.equal(false);
    expect(() => loadConfig({ OUTBOUND_ALLOW: '10.0.0.0/8, http://x/' })).to.throw(ConfigError, /OUTBOUND_ALLOW/);
    expect(loadConfig({ NODE_ENV: 'test', OUTBOUND_ALLOW: '*.corp.example' }).outbound.allow).to.include('*.corp.example');
  });

  it('classifies special-purpose addresses', function () {
    expect(deniedAddressRange('8.8.8.8')).to.equal(undefined);
    expect(deniedAddressRange('2606:4700:4700::1111')).to.equal(undefined);
    expect(deniedAddressRange('::ffff:8.8.8.8')).to.equal(undefined);
    expect(deniedAddressRange('100.100.100.200')).to.equal('carrierGradeNat');
    expect(deniedAddressRange('fd00:ec2::254')).to.equal('uniqueLocal');
    expect(deniedAddressRange('2001:db8::1')).to.equal('reserved');
    expect(deniedAddressRange('64:ff9b::a00:1')).to.equal('rfc6052');
    expect(deniedAddressRange('255.255.255.255')).to.equal('broadcast');
  });
});
