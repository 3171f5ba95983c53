/**
 * Organizations and keys (issue 12 item 1), through the HTTP API: the platform-admin key creates
 * and lists organizations (organization keys get 403), keys are listed, revoked and rotated per
 * organization, a revocation reaches other API nodes (in-process authenticators with a long
 * cache, and two real `web` processes from the Procfile) within a second, and an organization
 * created through the API sees nothing of another's runs, approvals, definitions or jobs.
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { createDatabase, hashApiKey, type Database } from '../db/index.js';
import { silentLogger } from '../lib/index.js';
import { ApiKeyAuthenticator } from '../services/api/auth.js';
import { RunEventHub } from '../services/api/event-hub.js';
import { exited, spawnProcess } from '../scripts/procfile.js';
import { freePort } from './support/private-services.js';
import { testEnvironment } from './support/environment.js';
import { api, startStack, waitFor, type Stack } from './support/stack.js';
import { uniqueSlug } from './support/test-agents.js';

interface ErrorBody {
  error: { code: string; message: string; field?: string };
}
interface KeyView {
  id: string;
  name: string;
  prefix: string;
  subject: string;
  scopes: string[];
  roles: string[];
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}
interface CreatedOrganization {
  id: string;
  slug: string;
  name: string;
  createdAt: string;
  apiKey: KeyView & { key: string };
}

/** A definition with a checkpoint, so a run of it waits with a pending approval. */
function checkpointDefinition(slug: string): string {
  return `
slug: ${slug}
version: 1
name: ${slug}
input: { type: object }
steps:
  - id: prepare
    type: function
    code: "function main() { return { ready: true } }"
  - id: review
    type: checkpoint
    needs: [prepare]
    prompt: "Review ${slug}"
`;
}

describe('organizations and keys', function () {
  this.timeout(120_000);
  let stack: Stack;
  const as = (apiKey: string) => ({ baseUrl: stack.baseUrl, apiKey });
  const platform = () => as(stack.adminApiKey);

  before(async function () {
    stack = await startStack();
  });
  after(async function () {
    await stack?.close();
  });

  async function newOrganization(prefix = 'org'): Promise<CreatedOrganization> {
    const slug = uniqueSlug(prefix).toLowerCase().replace(/[^a-z0-9-]/g, '-');
    const res = await api<CreatedOrganization>(platform(), 'POST', '/v1/organizations', { slug, name: `Organization ${slug}` });
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return res.body;
  }

  describe('platform routes', function () {
    it('create an organization with its first admin key, shown once; list them; 409 on a taken slug; 400 naming fields', async function () {
      const org = await newOrganization();
      expect(org).to.include.keys('id', 'slug', 'name', 'createdAt', 'apiKey');
      expect(org.apiKey.key).to.match(/^bk_/);
      expect(org.apiKey.scopes).to.include('admin');
      expect(org.apiKey).to.not.have.property('keyHash');
      // The first key works, for its own organization.
      const keys = await api<{ items: KeyView[] }>(as(org.apiKey.key), 'GET', '/v1/api-keys');
      expect(keys.status).to.equal(200);
      expect(keys.body.items.map((k) => k.id)).to.deep.equal([org.apiKey.id]);

      const listed = await api<{ items: Array<{ id: string; slug: string }> }>(platform(), 'GET', '/v1/organizations');
      expect(listed.status).to.equal(200);
      expect(listed.body.items.map((o) => o.slug)).to.include.members(['default', org.slug]);

      const taken = await api<ErrorBody>(platform(), 'POST', '/v1/organizations', { slug: org.slug, name: 'again' });
      expect(taken.status).to.equal(409);
      expect(taken.body.error).to.include({ code: 'CONFLICT', field: 'slug' });
      const badSlug = await api<ErrorBody>(platform(), 'POST', '/v1/organizations', { slug: 'Not A Slug', name: 'x' });
      expect(badSlug.status).to.equal(400);
      expect(badSlug.body.error.field).to.equal('slug');
      const noName = await api<ErrorBody>(platform(), 'POST', '/v1/organizations', { slug: `${org.slug}-2` });
      expect(noName.status).to.equal(400);
      expect(noName.body.error.field).to.equal('name');
      const extra = await api<ErrorBody>(platform(), 'POST', '/v1/organizations', { slug: `${org.slug}-3`, name: 'x', plan: 'gold' });
      expect(extra.status).to.equal(400);
      expect(extra.body.error.field).to.equal('plan');
    });

    it('refuse organization keys (403) and missing or unknown keys (401); the platform key is no organization key', async function () {
      for (const method of ['GET', 'POST'] as const) {
        const body = method === 'POST' ? { slug: 'never-created', name: 'x' } : undefined;
        const orgKey = await api<ErrorBody>(stack, method, '/v1/organizations', body);
        expect(orgKey.status, `${method} with an organization admin key`).to.equal(403);
        expect(orgKey.body.error.code).to.equal('FORBIDDEN');
        const unknown = await api<ErrorBody>(as('not-a-key-of-anyone'), method, '/v1/organizations', body);
        expect(unknown.status).to.equal(401);
        const anonymous = await fetch(`${stack.baseUrl}/v1/organizations`, { method, headers: { 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
        expect(anonymous.status).to.equal(401);
      }
      const asOrganization = await api<ErrorBody>(platform(), 'GET', '/v1/runs');
      expect(asOrganization.status).to.equal(403);
      expect(asOrganization.body.error.message).to.contain('BATON_ADMIN_API_KEY');
      const listed = await api<{ items: Array<{ slug: string }> }>(platform(), 'GET', '/v1/organizations');
      expect(listed.body.items.map((o) => o.slug)).to.not.include('never-created');
    });
  });

  it('without BATON_ADMIN_API_KEY, the platform routes and Bull Board answer 403 naming it', async function () {
    const closed = await startStack({ workers: false, config: { auth: { ...stack.config.auth, adminApiKey: undefined } } });
    try {
      for (const [method, path] of [['GET', '/v1/organizations'], ['POST', '/v1/organizations'], ['GET', '/admin/queues/api/queues']] as const) {
        for (const key of [stack.adminApiKey, closed.apiKey]) {
          const res = await api<ErrorBody>({ baseUrl: closed.baseUrl, apiKey: key }, method, path, method === 'POST' ? { slug: 'closed', name: 'x' } : undefined);
          expect(res.status, `${method} ${path}`).to.equal(403);
          expect(res.body.error.message).to.contain('BATON_ADMIN_API_KEY');
        }
      }
      expect((await api(closed, 'GET', '/v1/runs')).status, 'organization routes are unaffected').to.equal(200);
    } finally {
      await closed.close();
    }
  });

  describe('keys of an organization', function () {
    it('lists keys without secrets, records their last use, and revokes one (404 for another organization\'s key)', async function () {
      const org = await newOrganization('keys');
      const admin = as(org.apiKey.key);
      const created = await api<KeyView & { key: string }>(admin, 'POST', '/v1/api-keys', { name: 'reader', subject: 'user:rita', scopes: ['runs:read'], roles: ['finance'] });
      expect(created.status).to.equal(201);
      expect(created.body).to.include({ name: 'reader', subject: 'user:rita' });
      expect((await api(as(created.body.key), 'GET', '/v1/runs')).status).to.equal(200);

      const used = await waitFor(
        async () => {
          const { body } = await api<{ items: KeyView[] }>(admin, 'GET', '/v1/api-keys');
          const reader = body.items.find((k) => k.id === created.body.id);
          return reader?.lastUsedAt ? body.items : undefined;
        },
        10_000,
        'lastUsedAt of the used key',
      );
      expect(used.map((k) => k.id)).to.have.members([org.apiKey.id, created.body.id]);
      for (const k of used) {
        expect(k).to.have.keys('id', 'name', 'prefix', 'subject', 'scopes', 'roles', 'rateLimitRunsPerMinute', 'createdAt', 'lastUsedAt', 'revokedAt');
        expect(created.body.key.startsWith(used.find((u) => u.id === created.body.id)?.prefix ?? '-')).to.equal(true);
      }

      // Another organization's admin cannot see or revoke it.
      const other = await newOrganization('keys-other');
      const foreign = await api<ErrorBody>(as(other.apiKey.key), 'DELETE', `/v1/api-keys/${created.body.id}`);
      expect(foreign.status).to.equal(404);
      const otherList = await api<{ items: KeyView[] }>(as(other.apiKey.key), 'GET', '/v1/api-keys');
      expect(otherList.body.items.map((k) => k.id)).to.deep.equal([other.apiKey.id]);
      expect((await api(as(created.body.key), 'GET', '/v1/runs')).status, 'still valid after the foreign attempt').to.equal(200);
      expect((await api<ErrorBody>(admin, 'DELETE', '/v1/api-keys/not-a-uuid')).status).to.equal(404);
      expect((await api<ErrorBody>(as(created.body.key), 'GET', '/v1/api-keys')).status, 'without the admin scope').to.equal(403);

      const revoked = await fetch(`${stack.baseUrl}/v1/api-keys/${created.body.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${org.apiKey.key}` } });
      expect(revoked.status).to.equal(204);
      expect((await api<ErrorBody>(as(created.body.key), 'GET', '/v1/runs')).status).to.equal(401);
      const after = await api<{ items: KeyView[] }>(admin, 'GET', '/v1/api-keys');
      expect(after.body.items.find((k) => k.id === created.body.id)?.revokedAt).to.be.a('string');
      expect((await api(admin, 'DELETE', `/v1/api-keys/${created.body.id}`)).status, 'revoking again changes nothing').to.equal(204);
    });

    it('rotates a key: same identity, scopes and roles; the old key stops at once or after graceSeconds', async function () {
      const org = await newOrganization('rotate');
      const admin = as(org.apiKey.key);
      const first = await api<KeyView & { key: string }>(admin, 'POST', '/v1/api-keys', { name: 'svc', subject: 'service:billing', scopes: ['runs:read', 'runs:write'], roles: ['ops'] });
      expect((await api(as(first.body.key), 'GET', '/v1/runs')).status).to.equal(200);

      const rotated = await api<KeyView & { key: string; replaces: string; replacedKeyRevokedAt: string }>(admin, 'POST', `/v1/api-keys/${first.body.id}/rotate`, {});
      expect(rotated.status).to.equal(201);
      expect(rotated.body).to.deep.include({ name: 'svc', subject: 'service:billing', scopes: ['runs:read', 'runs:write'], roles: ['ops'], replaces: first.body.id });
      expect(rotated.body.key).to.not.equal(first.body.key);
      expect((await api(as(first.body.key), 'GET', '/v1/runs')).status, 'the old key').to.equal(401);
      expect((await api(as(rotated.body.key), 'GET', '/v1/runs')).status, 'the new key').to.equal(200);
      expect((await api<ErrorBody>(admin, 'POST', `/v1/api-keys/${first.body.id}/rotate`, {})).status, 'a revoked key').to.equal(409);

      const graced = await api<{ key: string; id: string; replacedKeyRevokedAt: string }>(admin, 'POST', `/v1/api-keys/${rotated.body.id}/rotate`, { graceSeconds: 3600 });
      expect(graced.status).to.equal(201);
      expect(Date.parse(graced.body.replacedKeyRevokedAt)).to.be.greaterThan(Date.now() + 3000_000);
      expect((await api(as(rotated.body.key), 'GET', '/v1/runs')).status, 'the old key during its grace period').to.equal(200);
      expect((await api(as(graced.body.key), 'GET', '/v1/runs')).status).to.equal(200);
      expect((await api<ErrorBody>(admin, 'POST', `/v1/api-keys/${rotated.body.id}/rotate`, {})).status, 'rotating a key in its grace period').to.equal(409);
      // Revoking cuts the grace period short.
      expect((await api(admin, 'DELETE', `/v1/api-keys/${rotated.body.id}`)).status).to.equal(204);
      expect((await api(as(rotated.body.key), 'GET', '/v1/runs')).status).to.equal(401);

      const bad = await api<ErrorBody>(admin, 'POST', `/v1/api-keys/${graced.body.id}/rotate`, { graceSeconds: -1 });
      expect(bad.status).to.equal(400);
      expect(bad.body.error.field).to.equal('graceSeconds');
      expect((await api<ErrorBody>(admin, 'POST', `/v1/api-keys/${randomUUID()}/rotate`, {})).status).to.equal(404);
    });
  });

  describe('revocation on every API node', function () {
    it('reaches other nodes\' caches through Postgres NOTIFY, however long they cache (in-process nodes)', async function () {
      const org = await newOrganization('notify');
      const key = await api<{ id: string; key: string }>(as(org.apiKey.key), 'POST', '/v1/api-keys', { name: 'k', subject: 'service:k', scopes: ['runs:read'] });
      const nodes: Array<{ database: Database; hub: RunEventHub; auth: ApiKeyAuthenticator }> = [];
      try {
        for (let i = 0; i < 2; i += 1) {
          const database = createDatabase(stack.config.postgres.url, { max: 2 });
          const hub = new RunEventHub(database.sql, stack.deps.queues, silentLogger());
          await hub.start();
          // A cache far longer than a second: only the notification can make the node forget.
          const auth = new ApiKeyAuthenticator(database.db, undefined, { cacheTtlMs: 600_000 });
          hub.subscribeApiKeyChanges((hash) => auth.forget(hash));
          nodes.push({ database, hub, auth });
        }
        for (const n of nodes) expect(await n.auth.resolve(key.body.key)).to.include({ keyId: key.body.id });
        const revokedAt = Date.now();
        expect((await api(as(org.apiKey.key), 'DELETE', `/v1/api-keys/${key.body.id}`)).status).to.equal(204);
        for (const n of nodes) {
          await waitFor(async () => ((await n.auth.resolve(key.body.key)) === null ? true : undefined), 5000, 'the node to refuse the revoked key');
        }
        expect(Date.now() - revokedAt, 'both nodes refuse the key within a second').to.be.lessThan(1000);
        // The hash on the wire is what the cache keys by.
        expect(hashApiKey(key.body.key)).to.have.length(64);
      } finally {
        for (const n of nodes) {
          await n.hub.stop();
          await n.database.close();
        }
      }
    });

    it('two web processes from the Procfile: a key revoked on one is refused by the other within a second', async function () {
      const { env } = await testEnvironment();
      const children: ChildProcess[] = [];
      // Ports the kernel just handed out as free (a random range could hit a port in use).
      const nodes = [await freePort(), await freePort()];
      try {
        for (const port of nodes) children.push(spawnProcess('web', { ...env, PORT: String(port), BATON_PUBLIC_URL: `http://127.0.0.1:${port}` }, { stdio: 'ignore' }));
        const [a, b] = nodes.map((port) => `http://127.0.0.1:${port}`) as [string, string];
        for (const base of [a, b]) {
          await waitFor(
            async () => {
              try {
                return (await fetch(`${base}/readyz`)).status === 200 ? true : undefined;
              } catch {
                return undefined;
              }
            },
            30_000,
            `web at ${base} to be ready`,
          );
        }
        const created = await api<CreatedOrganization>({ baseUrl: a, apiKey: stack.adminApiKey }, 'POST', '/v1/organizations', { slug: uniqueSlug('nodes').toLowerCase().replace(/[^a-z0-9-]/g, '-'), name: 'Two nodes' });
        expect(created.status).to.equal(201);
        const admin = created.body.apiKey.key;
        const key = await api<{ id: string; key: string }>({ baseUrl: a, apiKey: admin }, 'POST', '/v1/api-keys', { name: 'k', subject: 'service:k', scopes: ['runs:read'] });
        // Both nodes know (and cache) the key.
        for (const base of [a, b]) expect((await api({ baseUrl: base, apiKey: key.body.key }, 'GET', '/v1/runs')).status).to.equal(200);
        const revokedAt = Date.now();
        expect((await api({ baseUrl: a, apiKey: admin }, 'DELETE', `/v1/api-keys/${key.body.id}`)).status).to.equal(204);
        await waitFor(async () => ((await api({ baseUrl: b, apiKey: key.body.key }, 'GET', '/v1/runs')).status === 401 ? true : undefined), 5000, 'the other node to refuse the key');
        const elapsedMs = Date.now() - revokedAt;
        expect(elapsedMs, 'refused by the other node within a second').to.be.lessThan(1000);
        expect((await api({ baseUrl: a, apiKey: key.body.key }, 'GET', '/v1/runs')).status).to.equal(401);
      } finally {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
        await Promise.all(children.map((c) => exited(c)));
      }
    });
  });

  describe('tenant isolation', function () {
    it('an organization created through the API sees none of another\'s runs, approvals, definitions or jobs', async function () {
      // The first organization (the default one): a definition, a run waiting at a checkpoint.
      const slug = uniqueSlug('isolated');
      const stored = await fetch(`${stack.baseUrl}/v1/definitions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/yaml' },
        body: checkpointDefinition(slug),
      });
      expect(stored.status).to.equal(201);
      const started = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
      expect(started.status).to.equal(202);
      const runId = started.body.id;
      const approval = await waitFor(
        async () => {
          const { body } = await api<{ items: Array<{ id: string; runId: string }> }>(stack, 'GET', '/v1/approvals?status=pending&limit=200');
          return body.items.find((a) => a.runId === runId);
        },
        30_000,
        'the pending approval',
      );

      const second = await newOrganization('second');
      const them = as(second.apiKey.key);
      const runs = await api<{ items: unknown[] }>(them, 'GET', '/v1/runs');
      expect(runs.status).to.equal(200);
      expect(runs.body.items).to.deep.equal([]);
      expect((await api(them, 'GET', `/v1/runs/${runId}`)).status).to.equal(404);
      expect((await api(them, 'GET', `/v1/runs/${runId}/events`)).status).to.equal(404);
      expect((await api(them, 'POST', `/v1/runs/${runId}/cancel`, {})).status).to.equal(404);
      const approvals = await api<{ items: unknown[] }>(them, 'GET', '/v1/approvals?status=pending');
      expect(approvals.status).to.equal(200);
      expect(approvals.body.items).to.deep.equal([]);
      expect((await api(them, 'GET', `/v1/approvals/${approval.id}`)).status).to.equal(404);
      expect((await api(them, 'POST', `/v1/approvals/${approval.id}/decision`, { decision: 'continue' })).status).to.equal(404);
      const definitions = await api<{ items: Array<{ slug: string }> }>(them, 'GET', '/v1/definitions');
      expect(definitions.status).to.equal(200);
      expect(definitions.body.items).to.deep.equal([]);
      expect((await api(them, 'GET', `/v1/definitions/${slug}`)).status).to.equal(404);
      expect((await api(them, 'POST', '/v1/runs', { definition: slug, input: {} })).status, 'starting another organization\'s definition').to.equal(404);
      const keys = await api<{ items: Array<{ id: string }> }>(them, 'GET', '/v1/api-keys');
      expect(keys.body.items.map((k) => k.id)).to.deep.equal([second.apiKey.id]);
      // Jobs: Bull Board shows every organization's, so an organization's admin key is refused.
      for (const path of ['/admin/queues', '/admin/queues/api/queues']) {
        const board = await fetch(`${stack.baseUrl}${path}`, { headers: { authorization: `Basic ${Buffer.from(`admin:${second.apiKey.key}`).toString('base64')}` } });
        expect(board.status, path).to.equal(403);
        expect(await board.text()).to.not.contain(runId);
      }

      // And the other way round: the second organization's own definition and run stay its own.
      const ownSlug = uniqueSlug('second-own');
      const own = await fetch(`${stack.baseUrl}/v1/definitions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${second.apiKey.key}`, 'content-type': 'application/yaml' },
        body: checkpointDefinition(ownSlug),
      });
      expect(own.status).to.equal(201);
      const ownRun = await api<{ id: string }>(them, 'POST', '/v1/runs', { definition: ownSlug, input: {} });
      expect(ownRun.status).to.equal(202);
      expect((await api<{ items: Array<{ id: string }> }>(them, 'GET', '/v1/runs')).body.items.map((r) => r.id)).to.deep.equal([ownRun.body.id]);
      expect((await api(stack, 'GET', `/v1/runs/${ownRun.body.id}`)).status).to.equal(404);
      const firstDefinitions = await api<{ items: Array<{ slug: string }> }>(stack, 'GET', '/v1/definitions');
      expect(firstDefinitions.body.items.map((d) => d.slug)).to.include(slug).and.not.include(ownSlug);
      // The platform administrator sees every organization's jobs on Bull Board.
      const board = await fetch(`${stack.baseUrl}/admin/queues/api/queues`, { headers: { authorization: `Bearer ${stack.adminApiKey}` } });
      expect(board.status).to.equal(200);
      await api(stack, 'POST', `/v1/runs/${runId}/cancel`, {});
      await api(them, 'POST', `/v1/runs/${ownRun.body.id}/cancel`, {});
    });
  });
});
