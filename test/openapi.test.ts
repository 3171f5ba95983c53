/**
 * `/openapi.json`: a well-kept validator (@apidevtools/swagger-parser) accepts it; every express
 * route of the app, and every route README lists, is in it; request schemas are the validating
 * ones; `/docs` serves the reference page from node_modules.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { expect } from 'chai';
import type { Express } from 'express';
import { parseAgentSource } from '../agents/index.js';
import { projectRoot } from '../lib/index.js';
import { createApp } from '../services/api/app.js';
import { RunEventHub } from '../services/api/event-hub.js';
import { openApiPath } from '../services/api/openapi.js';
import { api, startStack, storeDefinition, waitForRun, type Stack } from './support/stack.js';
import { uniqueSlug } from './support/test-agents.js';

interface Operation {
  parameters?: Array<{ name: string; in: string; required?: boolean }>;
  requestBody?: { content: Record<string, { schema: Record<string, unknown> }> };
  responses: Record<string, unknown>;
}
type OpenApi = { openapi: string; paths: Record<string, Record<string, Operation>>; components: Record<string, unknown> };

interface LayerLike {
  route?: { path: unknown; methods: Record<string, boolean> };
  handle: { stack?: LayerLike[] };
  rawPath?: unknown;
}

/**
 * Every `METHOD /path` the express app answers, from its router stack: routes (recursing into
 * routers mounted at `/`), and `MOUNT <path>` for anything else mounted at a path (Bull Board,
 * static files).
 */
function expressRoutes(app: Express): string[] {
  const found: string[] = [];
  const walk = (stack: LayerLike[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const [method, on] of Object.entries(layer.route.methods)) {
          if (on && method !== '_all') found.push(`${method.toUpperCase()} ${prefix}${String(layer.route.path)}`);
        }
      } else if (typeof layer.rawPath === 'string' && layer.rawPath !== '/') {
        found.push(`MOUNT ${prefix}${layer.rawPath}`);
      } else if (Array.isArray(layer.handle.stack)) {
        walk(layer.handle.stack, prefix);
      }
    }
  };
  walk((app as unknown as { router: { stack: LayerLike[] } }).router.stack, '');
  return found;
}

describe('OpenAPI document', function () {
  this.timeout(60_000);
  let stack: Stack;
  let doc: OpenApi;

  before(async function () {
    stack = await startStack();
    const response = await fetch(`${stack.baseUrl}/openapi.json`);
    expect(response.status).to.equal(200);
    doc = (await response.json()) as OpenApi;
  });
  after(async function () {
    await stack?.close();
  });

  it('is a valid OpenAPI 3.1 document (swagger-parser)', async function () {
    expect(doc.openapi).to.equal('3.1.0');
    // validate() dereferences in place: give it a copy.
    await SwaggerParser.validate(structuredClone(doc) as unknown as Parameters<typeof SwaggerParser.validate>[0]);
  });

  it('has every express route of the app', function () {
    const app = createApp(stack.deps, new RunEventHub(stack.deps.database.sql, stack.deps.queues, stack.deps.logger), parseAgentSource);
    const routes = expressRoutes(app);
    expect(routes.length).to.be.greaterThan(30);
    const documented = new Set(Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)));
    const paths = Object.keys(doc.paths);
    const missing = routes.filter((r) => {
      const [method, path = ''] = r.split(' ');
      if (method === 'MOUNT') return !paths.some((p) => p === openApiPath(path) || p.startsWith(`${openApiPath(path)}/`));
      return !documented.has(`${method} ${openApiPath(path)}`);
    });
    expect(missing, 'routes without a documentRoute() declaration next to them').to.deep.equal([]);
  });

  it('has every route README lists', function () {
    const readme = readFileSync(join(projectRoot(), 'README.md'), 'utf8');
    const listed = [...readme.matchAll(/^\| `(GET|POST|PUT|PATCH|DELETE)? ?(\/[^`?\s]*)/gm)].map((m) => ({ method: m[1], path: m[2] ?? '' }));
    expect(listed.length).to.be.greaterThan(30);
    const missing = listed.filter(({ method, path }) => {
      const ops = doc.paths[openApiPath(path)];
      return !ops || (method !== undefined && !ops[method.toLowerCase()]);
    });
    expect(missing).to.deep.equal([]);
  });

  it('documents requests with the validating zod schemas, responses and the error shape', function () {
    const start = doc.paths['/v1/runs']?.post;
    const body = start?.requestBody?.content['application/json']?.schema as { properties: Record<string, unknown>; required: string[]; additionalProperties: boolean };
    expect(Object.keys(body.properties).sort()).to.deep.equal(['definition', 'idempotencyKey', 'input', 'version', 'webhookUrl']);
    expect(body.required).to.deep.equal(['definition']);
    expect(body.additionalProperties).to.equal(false);
    expect(start?.responses).to.include.keys('202', '400', '401', '403', '404', '500', '503');
    expect(start?.parameters?.map((p) => `${p.in}:${p.name}`)).to.include.members(['query:dryRun', 'header:traceparent']);
    const run = doc.paths['/v1/runs/{id}']?.get;
    const id = run?.parameters?.[0] as unknown as { name: string; in: string; required: boolean; schema: { type: string; format: string } };
    expect(id).to.deep.include({ name: 'id', in: 'path', required: true });
    expect(id.schema).to.include({ type: 'string', format: 'uuid' });
    const stats = doc.paths['/v1/stats']?.get;
    expect(stats?.parameters?.map((p) => p.name)).to.deep.equal(['window']);
    expect(JSON.stringify(doc.paths['/v1/runs']?.post?.responses['400'])).to.contain('#/components/schemas/Error');
  });

  it('describes real answers: each matches its documented response schema', async function () {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats.default(ajv);
    const conforms = async (method: string, path: string, template: string, body?: unknown, client: Pick<Stack, 'baseUrl' | 'apiKey'> = stack) => {
      const res = await api(client, method, path, body);
      const content = (doc.paths[template]?.[method.toLowerCase()]?.responses[String(res.status)] as { content?: Record<string, { schema: object }> } | undefined)?.content;
      const schema = content?.['application/json']?.schema;
      expect(schema, `${method} ${path} → ${res.status} is documented`).to.not.equal(undefined);
      const validate = ajv.compile({ ...schema, components: doc.components } as object);
      expect(validate(res.body), `${method} ${path}: ${ajv.errorsText(validate.errors)}`).to.equal(true);
      return res.body;
    };
    const slug = uniqueSlug('openapi');
    await storeDefinition(stack, `
slug: ${slug}
version: 1
name: OpenAPI
input: { type: object }
steps:
  - id: only
    type: function
    code: "function main() { return { ok: true } }"
`);
    const started = await conforms('POST', '/v1/runs', '/v1/runs', { definition: slug, input: {} });
    const id = String(started.id);
    await waitForRun(stack, id);
    await conforms('GET', `/v1/runs/${id}`, '/v1/runs/{id}');
    await conforms('GET', `/v1/runs?definition=${slug}`, '/v1/runs');
    await conforms('GET', `/v1/runs/${id}/events`, '/v1/runs/{id}/events');
    await conforms('GET', `/v1/runs/${id}/assets`, '/v1/runs/{id}/assets');
    await conforms('GET', `/v1/runs/${id}/deliverables`, '/v1/runs/{id}/deliverables');
    await conforms('GET', '/v1/approvals', '/v1/approvals');
    await conforms('GET', '/v1/definitions', '/v1/definitions');
    await conforms('GET', '/v1/agents', '/v1/agents');
    await conforms('POST', '/v1/secrets', '/v1/secrets', { name: 'OPENAPI_TEST', value: 'x' });
    await conforms('GET', '/v1/secrets', '/v1/secrets');
    await conforms('GET', '/v1/stats', '/v1/stats');
    await conforms('GET', '/v1/runs/not-a-run', '/v1/runs/{id}');
    const platform = { baseUrl: stack.baseUrl, apiKey: stack.adminApiKey };
    const org = await conforms('POST', '/v1/organizations', '/v1/organizations', { slug: uniqueSlug('openapi'), name: 'OpenAPI' }, platform);
    await conforms('GET', '/v1/organizations', '/v1/organizations', undefined, platform);
    const orgAdmin = { baseUrl: stack.baseUrl, apiKey: String((org.apiKey as { key: string }).key) };
    const key = await conforms('POST', '/v1/api-keys', '/v1/api-keys', { name: 'openapi', subject: 'service:openapi', scopes: ['runs:read'] }, orgAdmin);
    await conforms('GET', '/v1/api-keys', '/v1/api-keys', undefined, orgAdmin);
    await conforms('POST', `/v1/api-keys/${String(key.id)}/rotate`, '/v1/api-keys/{id}/rotate', { graceSeconds: 5 }, orgAdmin);
    await conforms('GET', '/v1/organizations', '/v1/organizations', undefined, orgAdmin);
    await conforms('POST', '/v1/runs', '/v1/runs', { definition: slug, input: {}, extra: 1 });
  });

  it('serves the reference page and its assets from node_modules at /docs', async function () {
    const page = await fetch(`${stack.baseUrl}/docs`);
    expect(page.status).to.equal(200);
    const html = await page.text();
    expect(html).to.contain('/docs/assets/swagger-ui-bundle.js');
    for (const asset of ['/docs/assets/swagger-ui-bundle.js', '/docs/assets/swagger-ui.css', '/docs/init.js']) {
      const response = await fetch(`${stack.baseUrl}${asset}`);
      expect(response.status, asset).to.equal(200);
      expect((await response.arrayBuffer()).byteLength, asset).to.be.greaterThan(10);
    }
    expect(await (await fetch(`${stack.baseUrl}/docs/init.js`)).text()).to.contain("url: '/openapi.json'");
  });

  it('rejects a bad stats window with a 400 naming the field', async function () {
    const { status, body } = await api<{ error: { field: string } }>(stack, 'GET', '/v1/stats?window=soon');
    expect(status).to.equal(400);
    expect(body.error.field).to.equal('window');
  });
});
