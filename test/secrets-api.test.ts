/** `/v1/secrets` through HTTP, against the real Postgres: sealed at rest, names only when listed. */
import { expect } from 'chai';
import { and, eq } from 'drizzle-orm';
import { secrets } from '../db/index.js';
import { openSecret, redactLogLine } from '../lib/index.js';
import { loadSecrets } from '../services/store/index.js';
import { api, startStack, type Stack } from './support/stack.js';
import { otherOrganization } from './support/organizations.js';

interface ErrorBody {
  error: { code: string; message: string; field?: string };
}
interface SecretItem {
  name: string;
  createdAt: string;
  updatedAt: string;
}

describe('secrets API', function () {
  let stack: Stack;
  before(async function () {
    stack = await startStack({ workers: false });
  });
  after(async function () {
    await stack.close();
  });

  const stored = async (organizationId: string, name: string) =>
    (
      await stack.deps.database.db
        .select()
        .from(secrets)
        .where(and(eq(secrets.organizationId, organizationId), eq(secrets.name, name)))
    )[0];

  it('creates a secret sealed at rest and never echoes the value', async function () {
    const value = 'sk-test-very-secret-value-1';
    const created = await api<SecretItem>(stack, 'POST', '/v1/secrets', { name: 'OPENAI_API_KEY', value });
    expect(created.status).to.equal(201);
    expect(Object.keys(created.body).sort()).to.deep.equal(['createdAt', 'name', 'updatedAt']);
    expect(created.body.name).to.equal('OPENAI_API_KEY');
    expect(JSON.stringify(created.body)).to.not.contain(value);
    const row = await stored(stack.organizationId, 'OPENAI_API_KEY');
    expect(row?.sealed).to.match(/^v1\./);
    expect(row?.sealed).to.not.contain(value);
    expect(row?.sealed).to.not.contain(Buffer.from(value).toString('base64'));
    expect(openSecret(stack.config.secrets.key, row?.sealed ?? '', `${stack.organizationId}/OPENAI_API_KEY`)).to.equal(value);
    expect(redactLogLine(`{"msg":"key ${value}"}`), 'registered with the logger').to.equal('{"msg":"key [redacted]"}');
  });

  it('replaces a secret, keeping createdAt', async function () {
    const first = await api<SecretItem>(stack, 'POST', '/v1/secrets', { name: 'ROTATED', value: 'first-value' });
    const second = await api<SecretItem>(stack, 'POST', '/v1/secrets', { name: 'ROTATED', value: 'second-value' });
    expect(second.status).to.equal(201);
    expect(second.body.createdAt).to.equal(first.body.createdAt);
    expect(new Date(second.body.updatedAt).getTime()).to.be.at.least(new Date(first.body.updatedAt).getTime());
    const loaded = await loadSecrets(stack.deps.database.db, stack.config.secrets.key, stack.organizationId, ['ROTATED', 'ABSENT']);
    expect(loaded).to.deep.equal({ ROTATED: 'second-value', ABSENT: undefined });
  });

  it('lists names and timestamps only', async function () {
    await api(stack, 'POST', '/v1/secrets', { name: 'LISTED_ONE', value: 'listed-value-one' });
    const listed = await api<{ items: SecretItem[] }>(stack, 'GET', '/v1/secrets');
    expect(listed.status).to.equal(200);
    const names = listed.body.items.map((i) => i.name);
    expect(names).to.include.members(['OPENAI_API_KEY', 'ROTATED', 'LISTED_ONE']);
    expect(names).to.deep.equal([...names].sort());
    for (const item of listed.body.items) expect(Object.keys(item).sort()).to.deep.equal(['createdAt', 'name', 'updatedAt']);
    expect(JSON.stringify(listed.body)).to.not.contain('listed-value-one');
  });

  it('deletes a secret (204), then 404', async function () {
    await api(stack, 'POST', '/v1/secrets', { name: 'TO_DELETE', value: 'delete-me-now' });
    const deleted = await fetch(`${stack.baseUrl}/v1/secrets/TO_DELETE`, { method: 'DELETE', headers: { authorization: `Bearer ${stack.apiKey}` } });
    expect(deleted.status).to.equal(204);
    expect(await stored(stack.organizationId, 'TO_DELETE')).to.equal(undefined);
    const again = await api<ErrorBody>(stack, 'DELETE', '/v1/secrets/TO_DELETE');
    expect(again.status).to.equal(404);
    expect(again.body.error.code).to.equal('NOT_FOUND');
    expect((await api<ErrorBody>(stack, 'DELETE', '/v1/secrets/bad-name')).body.error.field).to.equal('name');
  });

  it('answers 400 naming the field for bad input', async function () {
    const cases: Array<[unknown, string]> = [
      [{ name: 'lower_case', value: 'x' }, 'name'],
      [{ name: '1STARTS_WITH_DIGIT', value: 'x' }, 'name'],
      [{ value: 'x' }, 'name'],
      [{ name: 'EMPTY', value: '' }, 'value'],
      [{ name: 'NUL', value: 'a\u0000b' }, 'value'],
      [{ name: 'HUGE', value: 'x'.repeat(64 * 1024 + 1) }, 'value'],
      [{ name: 'NUMBER', value: 42 }, 'value'],
      [{ name: 'EXTRA', value: 'x', other: 1 }, 'other'],
    ];
    for (const [body, field] of cases) {
      const res = await api<ErrorBody>(stack, 'POST', '/v1/secrets', body);
      expect(res.status, JSON.stringify(body).slice(0, 60)).to.equal(400);
      expect(res.body.error.field).to.equal(field);
      expect(res.body.error.message).to.not.contain('a\u0000b');
    }
  });

  it('needs the admin scope to write and delete, and keeps organizations apart', async function () {
    const reader = await otherOrganization(stack, ['runs:read']);
    expect((await api<ErrorBody>(reader.client, 'POST', '/v1/secrets', { name: 'X_KEY', value: 'value' })).status).to.equal(403);
    expect((await api<ErrorBody>(reader.client, 'DELETE', '/v1/secrets/OPENAI_API_KEY')).status).to.equal(403);
    expect((await api<{ items: SecretItem[] }>(reader.client, 'GET', '/v1/secrets')).body.items).to.deep.equal([]);
    const admin = await otherOrganization(stack, ['admin']);
    expect((await api(admin.client, 'DELETE', '/v1/secrets/OPENAI_API_KEY')).status).to.equal(404);
    expect(await stored(stack.organizationId, 'OPENAI_API_KEY')).to.not.equal(undefined);
    // A sealed value copied into another organization does not open there (AAD binds it).
    const row = await stored(stack.organizationId, 'OPENAI_API_KEY');
    await stack.deps.database.db.insert(secrets).values({ organizationId: admin.organizationId, name: 'OPENAI_API_KEY', sealed: row?.sealed ?? '' });
    const err = await loadSecrets(stack.deps.database.db, stack.config.secrets.key, admin.organizationId, ['OPENAI_API_KEY']).catch((e: unknown) => e);
    expect((err as Error).message).to.contain('does not open');
  });
});
