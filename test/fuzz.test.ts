/**
 * Fuzzed requests against a real stack (issue 12): every route of `/openapi.json`, with mutated
 * path parameters, query strings, headers and bodies — NUL and lone surrogates, integers past
 * int32, year 0, empty durations, nesting 10,000 deep, a 20,000-term expression, a 12 KB
 * `Idempotency-Key`, a 20 KB header, unknown parameters, malformed JSON — must never get a 5xx,
 * every error must be `{error: {code, message, field?}}`, and the stack must still work after.
 *
 * Seeded (`FUZZ_SEED`, default below; `FUZZ_REQUESTS` for the count): request `i` is generated
 * from the seed and `i` alone, so a failure prints the request and `FUZZ_SEED` reproduces it.
 */
import { request as httpRequest, Agent, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { expect } from 'chai';
import { api, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { sleepAgent, uniqueSlug } from './support/test-agents.js';

const SEED = Number(process.env.FUZZ_SEED ?? 1201);
const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 10_000);
const CONCURRENCY = 16;
/** A request answered later than this counts as hung. */
const REQUEST_TIMEOUT_MS = 15_000;

/** mulberry32: a small seeded PRNG (uniform in [0, 1)). */
function prng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of request `i`: spread from `SEED`, so that two seeds share no requests. */
function requestSeed(i: number): number {
  return (Math.imul(SEED ^ 0x5bd1e995, 0x9e3779b1) + i) | 0;
}

class Gen {
  constructor(readonly random: () => number) {}
  chance(p: number): boolean {
    return this.random() < p;
  }
  int(n: number): number {
    return Math.floor(this.random() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
}

/** Placeholders replaced in the JSON text after `JSON.stringify` (which would recurse on them). */
const DEEP = { array10k: '"\u0001deep-array-10000"', object10k: '"\u0001deep-object-10000"', array65: '"\u0001deep-array-65"', array64: '"\u0001deep-array-64"' };
const deepArray = (n: number) => '['.repeat(n) + ']'.repeat(n);
const deepObject = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
function expandDeep(text: string): string {
  return text
    .replaceAll(DEEP.array10k, deepArray(10_000))
    .replaceAll(DEEP.object10k, deepObject(10_000))
    .replaceAll(DEEP.array65, deepArray(65))
    .replaceAll(DEEP.array64, deepArray(64));
}

const LONG_EXPRESSION = `\${{ ${Array.from({ length: 20_000 }, (_, i) => String(i % 10)).join(' + ')} }}`;

/** JSON values that once broke something, or might. */
const NASTY_VALUES: unknown[] = [
  '\u0000', 'a\u0000b', '\ud800', 'x\udfffy', '\udbff\udfff', '', ' ', 'a'.repeat(300), 'é'.repeat(5000), '💥',
  2147483647, 2147483648, -2147483649, -1, 0, 1.5, 1e308, Number.MAX_SAFE_INTEGER, null, true, false, [], {},
  [1, 'two', null], { '\u0000': 1 }, { '\ud800': 'x' }, { __proto__x: 1, constructor: 'x' },
  '0000-01-01', '2024-02-30', '9999-12-31T23:59:59Z', '${{ input }}', '${{ $string( }}', LONG_EXPRESSION,
  '../../etc/passwd', '%00', '<script>alert(1)</script>', 'http://127.0.0.1:1/x', 'ftp://x', '24h', '',
  DEEP.array10k, DEEP.object10k, DEEP.array65, DEEP.array64,
];
/** The values of the issue's 500s, picked half of the time. */
const CORE_NASTY: unknown[] = ['\u0000', 'a\u0000b', '\ud800', 'x\udc00', 2147483648, 99999999999, DEEP.array10k, DEEP.object10k, DEEP.array65, '', LONG_EXPRESSION, '0000-01-01', { '\u0000': 1 }];
const nasty = (g: Gen): unknown => g.pick(g.chance(0.5) ? CORE_NASTY : NASTY_VALUES);
const NASTY_QUERY_VALUES = [
  '', '\u0000', 'a\u0000', '2147483648', '-1', '0', '1', '50', '201', 'abc', '1e3', '0000-01-01', '0001-01-01',
  '2024-02-30', '2024-05-01T12:00:00Z', '2024-05-01T25:00:00+99:00', 'x'.repeat(5000), 'pending', 'decided',
  'running,completed', 'queued,nope', 'true', 'false', '24h', '0s', '999d', 'failed',
];
/** Raw (already percent-encoded) path segments. */
const NASTY_SEGMENTS = ['%00', 'a%00b', '%ED%A0%80', '%E0%A4%A', '%FF', '2147483648', '-1', '0', 'x'.repeat(3000), '..', '%2e%2e', 'null', '%F0%9F%92%A5'];
const UNKNOWN_QUERY = ['runId', 'foo', '__proto__', 'limit[]', 'a[b]', 'status ', '\u0000'];

interface Operation {
  method: string;
  /** OpenAPI path, e.g. `/v1/runs/{id}`. */
  path: string;
  params: Array<{ name: string; in: string; schema?: JsonSchema }>;
  body?: { contentTypes: string[]; schema?: JsonSchema };
}
type JsonSchema = { type?: string | string[]; properties?: Record<string, JsonSchema>; required?: string[]; enum?: unknown[]; items?: JsonSchema; anyOf?: JsonSchema[]; format?: string; const?: unknown };

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** Sent over a raw socket (bytes a normal client refuses to send). */
  raw?: string;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  ms: number;
}

interface Fixtures {
  slug: string;
  approvalSlug: string;
  runId: string;
  approvalId: string;
  webhookId: string;
  secretName: string;
  stepId: string;
}

/** The value a JSON schema roughly describes (valid, to start from). */
function sample(g: Gen, schema: JsonSchema | undefined, depth = 0): unknown {
  if (!schema || depth > 4) return 'x';
  if (schema.const !== undefined) return schema.const;
  if (schema.enum) return g.pick(schema.enum);
  if (schema.anyOf?.length) return sample(g, g.pick(schema.anyOf), depth + 1);
  const type = Array.isArray(schema.type) ? g.pick(schema.type) : schema.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [key, child] of Object.entries(schema.properties ?? {})) {
        if (schema.required?.includes(key) || g.chance(0.5)) out[key] = sample(g, child, depth + 1);
      }
      return out;
    }
    case 'array':
      return Array.from({ length: g.int(3) }, () => sample(g, schema.items, depth + 1));
    case 'integer':
      return g.int(5) + 1;
    case 'number':
      return g.random() * 10;
    case 'boolean':
      return g.chance(0.5);
    case 'string':
      return schema.format === 'uri' ? 'http://127.0.0.1:9/hook' : g.pick(['a', 'hello', 'ALPHA_KEY', 'run.completed', '*']);
    default:
      return g.pick(['x', 1, null, {}]);
  }
}

/** A nasty value of the same type, so that it gets past the schema to where it is used. */
function sameType(g: Gen, value: unknown): unknown {
  if (typeof value === 'string') {
    return g.pick([`${value}\u0000`, `\u0000${value}`, `${value}\ud800`, `\udc00${value}`, value.repeat(100), `${value}💥`, value.toUpperCase(), '']);
  }
  if (typeof value === 'number') return g.pick([2147483648, -2147483649, -1, 0, 1.5, 1e308, 99999999999]);
  return nasty(g);
}

/** Replace one value somewhere inside `value` (or the whole of it) with a nasty one. */
function mutate(g: Gen, value: unknown, depth = 0): unknown {
  if (typeof value === 'string' || typeof value === 'number') return g.chance(0.7) ? sameType(g, value) : nasty(g);
  if (depth > 3 || value === null || typeof value !== 'object' || g.chance(0.2)) return nasty(g);
  if (Array.isArray(value)) {
    if (value.length === 0) return [nasty(g)];
    const copy: unknown[] = [...(value as unknown[])];
    const i = g.int(copy.length);
    copy[i] = mutate(g, copy[i], depth + 1);
    return copy;
  }
  const copy = { ...(value as Record<string, unknown>) };
  const keys = Object.keys(copy);
  if (keys.length === 0 || g.chance(0.15)) {
    copy[g.pick(['unknownField', '\u0000', 'a\ud800', 'input', 'x'.repeat(300)])] = nasty(g);
    return copy;
  }
  const key = g.pick(keys);
  copy[key] = mutate(g, copy[key], depth + 1);
  return copy;
}

function jsonText(g: Gen, value: unknown): string {
  if (g.chance(0.04)) return g.pick(['{', '{"a":', 'nul', '[1,]', '"unterminated', '{"a":1}}', '\u0000', '']);
  return expandDeep(JSON.stringify(value));
}

function definitionYaml(g: Gen, fx: Fixtures): string {
  const slug = g.chance(0.05) ? fx.slug : uniqueSlug('fz');
  const parts = {
    slug: g.chance(0.9) ? slug : g.pick(['"a\\0b"', '"\\ud800"', '""', 'A'.repeat(300)]),
    version: g.pick(['1', '2', '3', '2147483648', '0', '-1', '"1"', '1.5']),
    name: g.pick(['fuzz', '"n\\0"', '"\\udc00"', '""']),
    timeout: g.pick(['5m', '""', '"0s"', '"x"', '1', '"-5m"', 'null', '"9999999d"']),
    label: g.pick(['"${{ input.label }}"', `"${LONG_EXPRESSION}"`, '"${{ $string( }}"', '"\\0"', '"${{ input.data }}"', '[' + '['.repeat(100) + ']'.repeat(100) + ']']),
    needs: g.pick(['[]', '[a]', '[missing]', '[b]']),
  };
  const extra = g.chance(0.1) ? `\nunknown: ${g.pick(['1', '"\\0"', deepArray(10_000)])}` : '';
  return `slug: ${parts.slug}
version: ${parts.version}
name: ${parts.name}
input: { type: object }
steps:
  - id: a
    type: function
    code: "function main(input) { return input }"
    timeout: ${parts.timeout}
    with: { label: ${parts.label} }
  - id: b
    type: function
    code: "function main() { return { ok: true } }"
    needs: ${parts.needs}${extra}
${g.chance(0.05) ? '# comment with a NUL \u0000' : ''}`;
}

function pathParam(g: Gen, name: string, fx: Fixtures, schema: JsonSchema | undefined, path: string): string {
  if (g.chance(0.15)) return g.pick(NASTY_SEGMENTS);
  if (name === 'id' && g.chance(0.8)) {
    if (path.startsWith('/v1/runs/')) return fx.runId;
    if (path.startsWith('/v1/approvals/')) return fx.approvalId;
    if (path.startsWith('/v1/webhooks/')) return fx.webhookId;
  }
  const good: Record<string, string[]> = {
    id: [fx.runId, fx.approvalId, fx.webhookId, '00000000-0000-4000-8000-000000000000'],
    stepId: [fx.stepId, 'missing'],
    slug: [fx.slug, fx.approvalSlug, 'nope'],
    version: ['1', '2', '99'],
    name: [fx.secretName, 'NOPE', 'test-sleep'],
    file: ['app.js', 'nope.js', '..%2f..%2fpackage.json'],
    assetId: ['00000000-0000-4000-8000-000000000001'],
    taskId: [fx.runId, 'nope'],
    configId: ['nope'],
  };
  if (schema?.enum && g.chance(0.5)) return encodeURIComponent(String(g.pick(schema.enum)));
  return g.pick(good[name] ?? ['x']);
}

function queryValue(g: Gen, schema: JsonSchema | undefined): string {
  if (schema?.enum && g.chance(0.5)) return String(g.pick(schema.enum));
  return g.pick(NASTY_QUERY_VALUES);
}

/** `encodeURIComponent` that keeps a lone surrogate as its (undecodable) UTF-8 bytes. */
function encode(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return '%ED%A0%80';
  }
}

function generate(g: Gen, ops: Operation[], fx: Fixtures, apiKey: string): FuzzRequest {
  if (g.chance(0.01)) {
    const raw = g.pick([
      `GET /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${apiKey}\r\nX-Bad: a\u0000b\r\n\r\n`,
      'GARBAGE\r\n\r\n',
      `GET /v1/runs HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(20_000)}\r\n\r\n`,
      'POST /v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
      'GET /v1/runs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n',
    ]);
    return { method: 'RAW', path: '', headers: {}, raw };
  }
  // Routes with a body have the most to get wrong: they are picked four times as often.
  const op = g.pick(g.chance(0.6) ? ops.filter((o) => o.body) : ops);
  let path = op.path.replace(/\{([^}]+)\}/g, (_m, name: string) => pathParam(g, name, fx, op.params.find((p) => p.name === name && p.in === 'path')?.schema, op.path));
  const query: string[] = [];
  for (const p of op.params.filter((p) => p.in === 'query')) {
    if (g.chance(0.5)) query.push(`${p.name}=${encode(queryValue(g, p.schema))}`);
    if (g.chance(0.05)) query.push(`${p.name}=${encode(queryValue(g, p.schema))}`);
  }
  if (g.chance(0.1)) query.push(`${encode(g.pick(UNKNOWN_QUERY))}=${encode(g.pick(NASTY_QUERY_VALUES))}`);
  if (g.chance(0.03)) query.push(`x=%ED%A0%80`);
  if (query.length > 0) path += `?${query.join('&')}`;

  const headers: Record<string, string> = {};
  const auth = g.random();
  if (auth < 0.94) headers.authorization = `Bearer ${apiKey}`;
  else if (auth < 0.97) headers.authorization = g.pick(['Bearer wrong-key-wrong-key', 'Basic Og==', 'Bearer ', `Bearer ${'k'.repeat(10_000)}`, 'Bearer é']);
  for (const p of op.params.filter((p) => p.in === 'header')) {
    if (!g.chance(0.5)) continue;
    headers[p.name] = g.pick(p.name === 'idempotency-key'
      ? [uniqueSlug('key'), 'k'.repeat(12 * 1024), 'k'.repeat(256), 'k'.repeat(255), 'fixed-key-1', 'é']
      : p.name === 'last-event-id' ? ['2147483648', '-1', 'x', '5', '', '1e3'] : ['1.0', '0.3', 'garbage', '', 'x'.repeat(2000)]);
  }
  if (g.chance(0.05)) headers['idempotency-key'] = g.pick(['k'.repeat(12 * 1024), 'fixed-key-2']);
  if (g.chance(0.05)) headers['last-event-id'] = g.pick(['2147483648', '99999999999']);
  if (g.chance(0.01)) headers['x-pad'] = 'p'.repeat(20 * 1024);
  if (g.chance(0.05)) headers.accept = g.pick(['text/html', 'application/json', '*/*', 'text/event-stream']);
  if (g.chance(0.03)) Object.assign(headers, { 'baton-integration': g.pick(['00000000-0000-4000-8000-000000000000', 'x']), 'webhook-id': 'msg_1', 'webhook-timestamp': g.pick(['0', '2147483648', 'x']), 'webhook-signature': 'v1,AAAA' });

  let body: string | undefined;
  if (op.body && (op.method !== 'get' || g.chance(0.1))) {
    const contentType = g.chance(0.95) ? g.pick(op.body.contentTypes) : g.pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1']);
    headers['content-type'] = contentType;
    if (contentType.includes('yaml')) {
      body = definitionYaml(g, fx);
    } else {
      let value: unknown;
      if (op.path === '/v1/runs' && op.method === 'post') {
        value = { definition: g.chance(0.8) ? fx.slug : g.pick(['nope', fx.approvalSlug]), input: { label: 'fz', data: { n: g.int(100) } } };
        if (g.chance(0.2)) (value as Record<string, unknown>).version = g.pick([1, 2147483648, 0, 1.5]);
        if (g.chance(0.2)) (value as Record<string, unknown>).idempotencyKey = g.pick([uniqueSlug('k'), 'fixed-key-3', 'k'.repeat(256)]);
      } else if (op.path === '/v1/definitions' && op.method === 'post') {
        value = { slug: uniqueSlug('fj'), version: 1, name: 'json', input: { type: 'object' }, steps: [{ id: 'a', type: 'function', code: 'function main(input) { return input }', timeout: g.pick(['5m', '']), with: { label: 'x' } }] };
      } else {
        value = sample(g, op.body.schema);
      }
      if (g.chance(0.8)) value = mutate(g, value);
      if (g.chance(0.3)) value = mutate(g, value);
      body = jsonText(g, value);
    }
  }
  return { method: op.method.toUpperCase(), path, headers, ...(body === undefined ? {} : { body }) };
}

function send(baseUrl: string, agent: Agent, req: FuzzRequest): Promise<Answer> {
  const started = Date.now();
  const url = new URL(baseUrl);
  const raw = req.raw;
  if (raw !== undefined) {
    return new Promise((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname);
      const chunks: Buffer[] = [];
      socket.setTimeout(REQUEST_TIMEOUT_MS, () => socket.destroy(new Error('raw request timed out')));
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('error', reject);
      socket.on('close', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const [head = '', ...rest] = text.split('\r\n\r\n');
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
        const headers: IncomingHttpHeaders = {};
        for (const line of head.split('\r\n').slice(1)) {
          const i = line.indexOf(':');
          if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
        }
        resolve({ status, headers, body: rest.join('\r\n\r\n'), ms: Date.now() - started });
      });
      socket.end(raw, 'latin1');
    });
  }
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      { host: url.hostname, port: url.port, method: req.method, path: req.path, headers: req.headers, agent, timeout: REQUEST_TIMEOUT_MS },
      (res) => {
        const chunks: Buffer[] = [];
        if (String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
          // A live stream: its status and headers are the answer.
          res.destroy();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '', ms: Date.now() - started });
          return;
        }
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), ms: Date.now() - started }));
        res.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    request.on('error', reject);
    request.end(req.body);
  });
}

/** Why an answer breaks the rules, if it does. */
function violation(req: FuzzRequest, answer: Answer): string | undefined {
  if (answer.status === 0) return 'no HTTP answer';
  if (answer.status >= 500) return `status ${answer.status}`;
  if (answer.status < 400 || req.method === 'HEAD') return undefined;
  const protocol = /^\/(a2a|mcp)\b/.test(req.path);
  let body: unknown;
  try {
    body = JSON.parse(answer.body);
  } catch {
    return `a ${answer.status} whose body is not JSON (${String(answer.headers['content-type'])})`;
  }
  const error = (body as { error?: { code?: unknown; message?: unknown; field?: unknown } } | null)?.error;
  if (protocol && typeof error?.message === 'string') return undefined; // JSON-RPC / A2A error objects
  if (typeof error?.code !== 'string' || typeof error.message !== 'string') return `a ${answer.status} not shaped {error: {code, message}}`;
  if (error.field !== undefined && typeof error.field !== 'string') return 'error.field is not a string';
  return undefined;
}

function describeRequest(index: number, req: FuzzRequest): string {
  const clip = (s: string) => (s.length > 400 ? `${s.slice(0, 400)}… (${s.length} chars)` : s);
  if (req.raw !== undefined) return `#${index} (FUZZ_SEED=${SEED}) RAW ${JSON.stringify(clip(req.raw))}`;
  const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, clip(v)]));
  return `#${index} (FUZZ_SEED=${SEED}) ${req.method} ${clip(req.path)} headers=${JSON.stringify(headers)}${req.body === undefined ? '' : ` body=${JSON.stringify(clip(req.body))}`}`;
}

function operationsOf(doc: { paths: Record<string, Record<string, { parameters?: Operation['params']; requestBody?: { content: Record<string, { schema?: JsonSchema }> } }>> }): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const content = op.requestBody?.content;
      ops.push({
        method,
        path,
        params: op.parameters ?? [],
        ...(content ? { body: { contentTypes: Object.keys(content), schema: content['application/json']?.schema } } : {}),
      });
      // Express answers HEAD with the GET route.
      if (method === 'get') ops.push({ method: 'head', path, params: op.parameters ?? [] });
    }
  }
  return ops;
}

describe('fuzzed requests (issue 12)', function () {
  this.timeout(400_000);
  let stack: Stack;
  let fx: Fixtures;
  let ops: Operation[];

  before(async function () {
    stack = await startStack({ agents: [sleepAgent] });
    const slug = uniqueSlug('fuzz');
    const approvalSlug = uniqueSlug('fuzz-approval');
    await storeDefinition(stack, `
slug: ${slug}
version: 1
name: fuzz target
input: { type: object, properties: { label: { type: string }, data: {} } }
steps:
  - id: echo
    agent: test-sleep
    with: { label: "\${{ $string(input.label) }}", delayMs: 1, data: "\${{ input.data }}" }
output:
  label: \${{ steps.echo.output.label }}
`, [sleepAgent]);
    await storeDefinition(stack, `
slug: ${approvalSlug}
version: 1
name: fuzz approval
input: { type: object }
steps:
  - id: review
    type: checkpoint
    prompt: "Fuzz?"
    timeout: 1h
`, [sleepAgent]);
    const run = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: { label: 'seed' } });
    expect(run.status).to.equal(202);
    await waitForRun(stack, run.body.id);
    const waiting = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: approvalSlug, input: {} });
    const approvalId = await waitFor(async () => {
      const view = await api<{ approvals?: Array<{ id: string }> }>(stack, 'GET', `/v1/runs/${waiting.body.id}`);
      return view.body.approvals?.[0]?.id;
    }, 30_000, 'the approval to open');
    const webhook = await api<{ id: string }>(stack, 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook', events: ['run.completed'] });
    expect(webhook.status).to.equal(201);
    const secret = await api(stack, 'POST', '/v1/secrets', { name: 'FUZZ_SECRET', value: 'v' });
    expect(secret.status).to.equal(201);
    fx = { slug, approvalSlug, runId: run.body.id, approvalId, webhookId: webhook.body.id, secretName: 'FUZZ_SECRET', stepId: 'echo' };
    const response = await fetch(`${stack.baseUrl}/openapi.json`);
    ops = operationsOf((await response.json()) as Parameters<typeof operationsOf>[0]);
    expect(ops.length).to.be.greaterThan(50);
  });
  after(async function () {
    await stack?.close();
  });

  it(`answers ${REQUESTS} mutated requests across every route without a 5xx, every error {error: {code, message, field?}}`, async function () {
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    const slow: Array<{ ms: number; request: string }> = [];
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < REQUESTS; i = next++) {
        const req = generate(new Gen(prng(requestSeed(i))), ops, fx, stack.apiKey);
        let answer: Answer;
        try {
          answer = await send(stack.baseUrl, agent, req);
        } catch (err) {
          failures.push(`${describeRequest(i, req)}\n    → ${(err as Error).message}`);
          continue;
        }
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        if (slow.length < 5 || answer.ms > (slow.at(-1)?.ms ?? 0)) {
          slow.push({ ms: answer.ms, request: describeRequest(i, req) });
          slow.sort((a, b) => b.ms - a.ms).splice(5);
        }
        const problem = violation(req, answer);
        if (problem) failures.push(`${describeRequest(i, req)}\n    → ${problem}: ${answer.body.slice(0, 300)}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    agent.destroy();
    const summary = [...statuses.entries()].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ');
    console.log(`      ${REQUESTS} requests: ${summary}; slowest:\n${slow.map((s) => `        ${s.ms} ms ${s.request.slice(0, 160)}`).join('\n')}`);
    expect(failures, failures.slice(0, 10).join('\n')).to.deep.equal([]);
    expect([...statuses.values()].reduce((a, b) => a + b, 0)).to.equal(REQUESTS);
  });

  it("answers each of the issue's 500s with a 4xx naming the field", async function () {
    const deep = (n: number, leaf = '1') => '{"a":'.repeat(n) + leaf + '}'.repeat(n);
    const yaml = (lines: string) => `slug: ${uniqueSlug('bad')}\nversion: 1\nname: bad\ninput: { type: object }\nsteps:\n  - id: a\n    type: function\n    code: "function main() { return 1 }"\n${lines}`;
    const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const cases: Array<{ name: string; method: string; path: string; body?: string; headers?: Record<string, string>; status: number; field?: string | RegExp; code?: string }> = [
      { name: 'NUL in run input', method: 'POST', path: '/v1/runs', ...json({ definition: fx.slug, input: { label: 'a\u0000b' } }), status: 400, field: 'input.label' },
      { name: 'lone surrogate in run input', method: 'POST', path: '/v1/runs', ...json({ definition: fx.slug, input: { label: 'x\ud800' } }), status: 400, field: 'input.label' },
      { name: 'NUL in an input key', method: 'POST', path: '/v1/runs', ...json({ definition: fx.slug, input: { 'a\u0000': 1 } }), status: 400, field: 'input.a\u0000' },
      { name: 'NUL in the definition slug', method: 'POST', path: '/v1/runs', ...json({ definition: 'a\u0000', input: {} }), status: 400, field: 'definition' },
      { name: 'NUL in the idempotency key', method: 'POST', path: '/v1/runs', ...json({ definition: fx.slug, input: {}, idempotencyKey: 'k\u0000' }), status: 400, field: 'idempotencyKey' },
      { name: 'NUL in a cancel reason', method: 'POST', path: `/v1/runs/${fx.runId}/cancel`, ...json({ reason: 'why\u0000' }), status: 400, field: 'reason' },
      { name: 'lone surrogate in a comment', method: 'POST', path: `/v1/approvals/${fx.approvalId}/decision`, ...json({ decision: 'continue', comment: '\udc00' }), status: 400, field: 'comment' },
      { name: 'NUL in a key name', method: 'POST', path: '/v1/api-keys', ...json({ name: 'k\u0000', subject: 'user:fuzz', scopes: ['runs:read'] }), status: 400, field: 'name' },
      { name: 'NUL in a JSON definition', method: 'POST', path: '/v1/definitions', ...json({ slug: uniqueSlug('bad'), version: 1, name: 'n\u0000', steps: [] }), status: 400, field: 'name' },
      { name: 'NUL in a YAML definition', method: 'POST', path: '/v1/definitions', body: yaml('    with: { x: "a\\0b" }'), headers: { 'content-type': 'application/yaml' }, status: 400, code: 'DEFINITION_INVALID' },
      { name: 'a raw NUL in YAML text', method: 'POST', path: '/v1/definitions', body: yaml('# \u0000'), headers: { 'content-type': 'application/yaml' }, status: 400, code: 'DEFINITION_INVALID' },
      { name: 'an empty duration', method: 'POST', path: '/v1/definitions', body: yaml('    timeout: ""'), headers: { 'content-type': 'application/yaml' }, status: 400, code: 'DEFINITION_INVALID' },
      { name: 'a 20,000-term expression', method: 'POST', path: '/v1/definitions', body: yaml(`    with: { x: "${LONG_EXPRESSION}" }`), headers: { 'content-type': 'application/yaml' }, status: 400, code: 'DEFINITION_INVALID' },
      { name: 'version past int32', method: 'POST', path: '/v1/runs', ...json({ definition: fx.slug, version: 2147483648, input: {} }), status: 400, field: 'version' },
      { name: '?after= past int32', method: 'GET', path: `/v1/runs/${fx.runId}/events?after=2147483648`, status: 400, field: 'after' },
      { name: 'Last-Event-ID past int32', method: 'GET', path: `/v1/runs/${fx.runId}/stream`, headers: { 'last-event-id': '2147483648' }, status: 400, field: 'Last-Event-ID' },
      { name: 'createdAfter in year 0', method: 'GET', path: '/v1/runs?createdAfter=0000-01-01', status: 400, field: 'createdAfter' },
      { name: 'input nested 10,000 deep', method: 'POST', path: '/v1/runs', body: `{"definition":"${fx.slug}","input":${deep(10_000)}}`, headers: { 'content-type': 'application/json' }, status: 400, field: /^input(\.a){63}$/ },
      { name: 'input nested 64 deep in the body', method: 'POST', path: '/v1/runs', body: `{"definition":"${fx.slug}","input":${deep(64)}}`, headers: { 'content-type': 'application/json' }, status: 400, field: /^input(\.a){63}$/ },
      { name: 'any body nested 65 deep', method: 'POST', path: '/v1/secrets', body: `{"name":"X","value":${'['.repeat(65)}${']'.repeat(65)}}`, headers: { 'content-type': 'application/json' }, status: 400, field: /^value(\.0){63}$/ },
      { name: 'a 12 KB Idempotency-Key', method: 'POST', path: '/v1/runs', ...json({ definition: fx.slug, input: {} }), headers: { 'content-type': 'application/json', 'idempotency-key': 'k'.repeat(12 * 1024) }, status: 400, field: 'Idempotency-Key' },
      { name: 'a 256-character idempotencyKey', method: 'POST', path: '/v1/runs', ...json({ definition: fx.slug, input: {}, idempotencyKey: 'k'.repeat(256) }), status: 400, field: 'idempotencyKey' },
      { name: 'an unknown query parameter', method: 'GET', path: '/v1/approvals?runId=x', status: 400, field: 'runId' },
      { name: 'a query parameter on a route without any', method: 'GET', path: `/v1/runs/${fx.runId}?expand=steps`, status: 400, field: 'expand' },
      { name: 'NUL in a query value', method: 'GET', path: '/v1/runs?definition=%00', status: 400, field: 'definition' },
      { name: 'NUL in a path parameter', method: 'DELETE', path: '/v1/secrets/A%00', status: 400, field: 'name' },
      { name: 'a path parameter that is not UTF-8', method: 'GET', path: '/v1/definitions/%E0%A4%A', status: 400, field: 'slug' },
      { name: 'run input over RUN_INPUT_MAX_BYTES', method: 'POST', path: '/v1/runs', ...json({ definition: fx.slug, input: { label: 'x', data: 'x'.repeat(1024 * 1024) } }), status: 413, field: 'input', code: 'INPUT_TOO_LARGE' },
      { name: 'NUL in a webhook URL', method: 'POST', path: '/v1/webhooks', ...json({ url: 'http://127.0.0.1:9/\u0000', events: ['*'] }), status: 400, field: 'url' },
    ];
    const agent = new Agent({ keepAlive: false });
    const wrong: string[] = [];
    for (const c of cases) {
      const answer = await send(stack.baseUrl, agent, { method: c.method, path: c.path, headers: { authorization: `Bearer ${stack.apiKey}`, ...c.headers }, ...(c.body === undefined ? {} : { body: c.body }) });
      const error = (JSON.parse(answer.body || 'null') as { error?: { code: string; field?: string } } | null)?.error;
      const fieldOk = c.field === undefined || (typeof c.field === 'string' ? error?.field === c.field : c.field.test(error?.field ?? ''));
      if (answer.status !== c.status || !fieldOk || (c.code !== undefined && error?.code !== c.code)) {
        wrong.push(`${c.name}: ${answer.status} ${answer.body.slice(0, 300)}`);
      }
    }
    const big = await send(stack.baseUrl, agent, { method: 'GET', path: '/v1/runs', headers: { authorization: `Bearer ${stack.apiKey}`, 'x-pad': 'p'.repeat(20 * 1024) } });
    if (big.status !== 431 || violation({ method: 'GET', path: '/v1/runs', headers: {} }, big)) wrong.push(`a 20 KB header: ${big.status} ${big.body}`);
    const within = await api(stack, 'POST', '/v1/runs', { definition: fx.slug, input: { label: 'deep', data: JSON.parse(deep(62)) as unknown } });
    if (within.status !== 202) wrong.push(`input nested 63 deep (64 in the body): ${within.status} ${JSON.stringify(within.body)}`);
    expect(wrong, wrong.join('\n')).to.deep.equal([]);
  });

  it('fails a step whose output holds a NUL naming the field, and the worker carries on', async function () {
    const slug = uniqueSlug('nul-output');
    await storeDefinition(stack, `
slug: ${slug}
version: 1
name: nul output
input: { type: object }
steps:
  - id: a
    type: function
    code: "function main() { return { text: 'x' + String.fromCharCode(0) } }"
`);
    const run = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
    const view = await waitForRun(stack, run.body.id);
    expect(view.status).to.equal('failed');
    const step = (view as unknown as { steps: Array<{ error: { code: string; field?: string } | null }> }).steps[0];
    expect(step?.error).to.include({ code: 'VALIDATION_FAILED', field: 'output.text' });
  });

  it('is still alive and working afterwards', async function () {
    expect((await fetch(`${stack.baseUrl}/healthz`)).status).to.equal(200);
    const run = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: fx.slug, version: 1, input: { label: 'after', data: { ok: true } } });
    expect(run.status).to.equal(202);
    expect((await waitForRun(stack, run.body.id)).status).to.equal('completed');
  });
});
