/**
 * The definitions API against real Redis and Postgres: YAML and JSON creates of the next version,
 * version conflicts, positioned validation errors, listings, scopes, and runs pinned to the
 * version they started on.
 */
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { api, startStack, waitFor, waitForRun, type Stack } from './support/stack.js';
import { sleepAgent, uniqueSlug } from './support/test-agents.js';
import type { DefinitionVersionView } from '../services/store/index.js';

interface ErrorBody {
  error: { code: string; message: string; field?: string; details?: { problems?: Array<Record<string, unknown>> } };
}

/** POST a YAML body to `/v1/definitions`. */
async function postYaml<T>(
  stack: Pick<Stack, 'baseUrl' | 'apiKey'>,
  yaml: string,
  contentType = 'application/yaml',
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${stack.baseUrl}/v1/definitions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': contentType },
    body: yaml,
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
}

/** Two steps: `a` waits `delayMs`, then `b` echoes `<slug>-<tag>`, which is the run's output. */
function twoSteps(slug: string, tag: string, options: { version?: number; delayMs?: number } = {}): string {
  return [
    `slug: ${slug}`,
    ...(options.version === undefined ? [] : [`version: ${options.version}`]),
    `name: Two steps ${tag}`,
    `description: b echoes ${tag}`,
    'input: { type: object }',
    'steps:',
    '  - id: a',
    '    agent: test-sleep',
    `    with: { label: "${slug}-a", delayMs: ${options.delayMs ?? 1} }`,
    '  - id: b',
    '    agent: test-sleep',
    '    needs: [a]',
    `    with: { label: "${slug}-${tag}", delayMs: 1 }`,
    'output:',
    '  label: ${{ steps.b.output.label }}',
    '',
  ].join('\n');
}

describe('definitions API', function () {
  let stack: Stack;

  before(async function () {
    // Workers run `test-sleep`, and the API validates definitions naming it.
    stack = await startStack({ agents: [sleepAgent] });
  });
  after(async function () {
    await stack?.close();
  });

  it('creates version 1 from YAML, then version 2, and refuses a stated version other than the next', async function () {
    const slug = uniqueSlug('defs');
    const first = await postYaml<DefinitionVersionView>(stack, twoSteps(slug, 'one'));
    expect(first.status, JSON.stringify(first.body)).to.equal(201);
    expect(first.body).to.include({ slug, version: 1, name: 'Two steps one', description: 'b echoes one' });
    expect(Date.parse(first.body.createdAt)).to.be.closeTo(Date.now(), 60_000);
    expect(first.body.steps).to.deep.equal([
      { id: 'a', type: 'api', agent: 'test-sleep', needs: [] },
      { id: 'b', type: 'api', agent: 'test-sleep', needs: ['a'] },
    ]);

    const second = await postYaml<DefinitionVersionView>(stack, twoSteps(slug, 'two', { version: 2 }), 'text/yaml');
    expect(second.status, JSON.stringify(second.body)).to.equal(201);
    expect(second.body.version).to.equal(2);

    for (const stated of [2, 1, 5]) {
      const wrong = await postYaml<ErrorBody>(stack, twoSteps(slug, 'again', { version: stated }), 'application/x-yaml');
      expect(wrong.status, `version ${stated}`).to.equal(409);
      expect(wrong.body.error).to.include({ code: 'CONFLICT', field: 'version' });
      expect(wrong.body.error.message).to.contain('version must be 3');
    }
    const versions = await api<{ versions: Array<{ version: number }> }>(stack, 'GET', `/v1/definitions/${slug}`);
    expect(versions.body.versions.map((v) => v.version)).to.deep.equal([2, 1]);
  });

  it('stores the YAML with its version injected and the checksum of what it stored', async function () {
    const slug = uniqueSlug('stored');
    const yaml = twoSteps(slug, 'one');
    const created = await postYaml<DefinitionVersionView>(stack, yaml);
    expect(created.status).to.equal(201);
    const one = await api<{ source: string; checksum: string; input: unknown; steps: unknown[] }>(
      stack,
      'GET',
      `/v1/definitions/${slug}/versions/1`,
    );
    expect(one.status).to.equal(200);
    expect(one.body.source).to.equal(`${yaml}version: 1\n`);
    expect(one.body.checksum).to.equal(createHash('sha256').update(one.body.source).digest('hex'));
    expect(one.body.checksum).to.equal(created.body.checksum);
    expect(one.body.input).to.deep.equal({ type: 'object' });
    expect(one.body.steps).to.have.length(2);
    expect((await api(stack, 'GET', `/v1/definitions/${slug}/versions/2`)).status).to.equal(404);
    expect((await api(stack, 'GET', `/v1/definitions/${slug}/versions/x`)).status).to.equal(404);
  });

  it('concurrent creates never share a version: the losers get 409', async function () {
    const slug = uniqueSlug('race');
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => postYaml<DefinitionVersionView & ErrorBody>(stack, twoSteps(slug, `r${i}`))));
    const created = results.filter((r) => r.status === 201).map((r) => r.body.version);
    expect(results.every((r) => r.status === 201 || (r.status === 409 && r.body.error.field === 'version'))).to.equal(true);
    expect(created.length).to.be.at.least(1);
    expect([...created].sort((a, b) => a - b)).to.deep.equal(created.map((_, i) => i + 1));
    const versions = await api<{ versions: unknown[] }>(stack, 'GET', `/v1/definitions/${slug}`);
    expect(versions.body.versions).to.have.length(created.length);
  });

  it('injects the version into indented, unterminated and flow-style YAML documents', async function () {
    const indented = uniqueSlug('indented');
    const bodies = [
      [`  slug: ${indented}`, '  name: Indented', '  input: { type: object }', '  steps:', '    - { id: a, agent: test-sleep }'].join('\n'),
      `{slug: ${uniqueSlug('flow')}, name: Flow, input: {type: object}, steps: [{id: a, agent: test-sleep}]}`,
    ];
    for (const body of bodies) {
      const created = await postYaml<DefinitionVersionView>(stack, body);
      expect(created.status, `${body}\n${JSON.stringify(created.body)}`).to.equal(201);
      expect(created.body.version).to.equal(1);
    }
    const again = await postYaml<DefinitionVersionView>(stack, bodies[0]!);
    expect(again.body.version).to.equal(2);
    const stored = await api<{ source: string }>(stack, 'GET', `/v1/definitions/${indented}/versions/2`);
    expect(stored.body.source).to.equal(`${bodies[0]!}\n  version: 2\n`);
  });

  it('answers 400 DEFINITION_INVALID with file:line:column positions and every problem in details', async function () {
    const syntax = await postYaml<ErrorBody>(stack, 'slug: broken\nname: [unclosed\nsteps:\n  - id: a\n');
    expect(syntax.status).to.equal(400);
    expect(syntax.body.error.code).to.equal('DEFINITION_INVALID');
    expect(syntax.body.error.message).to.match(/^request\.yaml:\d+:\d+: YAML syntax error/);
    expect(syntax.body.error.details?.problems).to.be.an('array').with.lengthOf.above(0);

    // `version` is omitted and injected: the positions still refer to the lines as sent.
    const slug = uniqueSlug('invalid');
    const yaml = [
      `slug: ${slug}`,
      'name: Broken',
      'input: { type: object }',
      'steps:',
      '  - id: a',
      '    agent: no-such-agent',
      '  - id: b',
      '    agent: test-sleep',
      '    needs: [a, lod]',
      '',
    ].join('\n');
    const semantic = await postYaml<ErrorBody>(stack, yaml);
    expect(semantic.status).to.equal(400);
    expect(semantic.body.error.code).to.equal('DEFINITION_INVALID');
    expect(semantic.body.error.message).to.match(new RegExp(`^${slug}\\.yaml:6:12: step a: .*no-such-agent`));
    expect(semantic.body.error.message).to.contain(`${slug}.yaml:9:`);
    const problems = semantic.body.error.details?.problems ?? [];
    expect(problems).to.have.length.of.at.least(2);
    expect(problems[0]).to.include({ file: `${slug}.yaml`, line: 6, column: 12, path: 'steps[0].agent' });
    expect(problems.map((p) => p.line)).to.include(9);
    // Nothing was stored.
    expect((await api(stack, 'GET', `/v1/definitions/${slug}`)).status).to.equal(404);
  });

  it('accepts the JSON object form, with or without a version', async function () {
    const slug = uniqueSlug('json');
    const doc = {
      slug,
      name: 'From JSON',
      input: { type: 'object' },
      steps: [
        { id: 'first', agent: 'test-sleep', with: { label: `${slug}-first`, delayMs: 1 } },
        { id: 'review', type: 'checkpoint', needs: ['first'], prompt: 'ok?' },
      ],
    };
    const created = await api<DefinitionVersionView>(stack, 'POST', '/v1/definitions', doc);
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    expect(created.body).to.include({ slug, version: 1, name: 'From JSON', description: null });
    expect(created.body.steps).to.deep.equal([
      { id: 'first', type: 'api', agent: 'test-sleep', needs: [] },
      { id: 'review', type: 'checkpoint', agent: null, needs: ['first'] },
    ]);
    const stated = await api<DefinitionVersionView>(stack, 'POST', '/v1/definitions', { ...doc, version: 2, name: 'Second' });
    expect(stated.status).to.equal(201);
    expect(stated.body.version).to.equal(2);
    const conflict = await api<ErrorBody>(stack, 'POST', '/v1/definitions', { ...doc, version: 2 });
    expect(conflict.status).to.equal(409);
    expect(conflict.body.error.field).to.equal('version');

    const invalid = await api<ErrorBody>(stack, 'POST', '/v1/definitions', {
      ...doc,
      steps: [...doc.steps, { id: 'late', agent: 'test-sleep', needs: ['lod'] }],
    });
    expect(invalid.status).to.equal(400);
    expect(invalid.body.error.code).to.equal('DEFINITION_INVALID');
    expect(invalid.body.error.message).to.match(/^request: steps\[2\]\.needs\[0\]: /);
    expect(invalid.body.error.details?.problems?.[0]).to.include({ file: 'request', path: 'steps[2].needs[0]' });

    const plain = await fetch(`${stack.baseUrl}/v1/definitions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'text/plain' },
      body: 'slug: x',
    });
    expect(plain.status).to.equal(400);
    expect(((await plain.json()) as ErrorBody).error.field).to.equal('content-type');
  });

  it('lists the latest version per slug and every version of one slug, newest first', async function () {
    const slug = uniqueSlug('listed');
    for (const tag of ['one', 'two', 'three']) expect((await postYaml(stack, twoSteps(slug, tag))).status).to.equal(201);
    const list = await api<{ items: Array<Record<string, unknown>> }>(stack, 'GET', '/v1/definitions');
    expect(list.status).to.equal(200);
    const item = list.body.items.find((i) => i.slug === slug);
    expect(item).to.include({ slug, version: 3, name: 'Two steps three', description: 'b echoes three', versions: 3 });
    expect(item?.createdAt).to.be.a('string');
    // The release synced definitions/ into the same organization.
    expect(list.body.items.find((i) => i.slug === 'kpi-tracking')).to.include({ version: 1, versions: 1 });
    const slugs = list.body.items.map((i) => String(i.slug));
    expect(slugs).to.deep.equal([...slugs].sort());
    expect(new Set(slugs).size).to.equal(slugs.length);

    const versions = await api<{ slug: string; versions: Array<Record<string, unknown>> }>(stack, 'GET', `/v1/definitions/${slug}`);
    expect(versions.status).to.equal(200);
    expect(versions.body.slug).to.equal(slug);
    expect(versions.body.versions.map((v) => v.version)).to.deep.equal([3, 2, 1]);
    expect(versions.body.versions.map((v) => v.name)).to.deep.equal(['Two steps three', 'Two steps two', 'Two steps one']);
    for (const v of versions.body.versions) expect(v.checksum).to.match(/^[0-9a-f]{64}$/);

    const unknown = await api<ErrorBody>(stack, 'GET', `/v1/definitions/${uniqueSlug('nope')}`);
    expect(unknown.status).to.equal(404);
    expect(unknown.body.error.code).to.equal('NOT_FOUND');
  });

  it('needs the definitions:write scope to create, and runs:read to read', async function () {
    const created = await api<{ key: string }>(stack, 'POST', '/v1/api-keys', {
      name: 'reader',
      subject: 'user:x',
      scopes: ['runs:read'],
      roles: [],
    });
    expect(created.status).to.equal(201);
    const reader = { baseUrl: stack.baseUrl, apiKey: created.body.key };
    const slug = uniqueSlug('scoped');
    const refused = await postYaml<ErrorBody>(reader, twoSteps(slug, 'one'));
    expect(refused.status).to.equal(403);
    expect(refused.body.error.code).to.equal('FORBIDDEN');
    expect((await api(stack, 'GET', `/v1/definitions/${slug}`)).status).to.equal(404);
    expect((await api(reader, 'GET', '/v1/definitions')).status).to.equal(200);
    const anonymous = await fetch(`${stack.baseUrl}/v1/definitions`);
    expect(anonymous.status).to.equal(401);
  });

  it('a run started on v1 keeps running v1 after v2 is created', async function () {
    const slug = uniqueSlug('pinned');
    expect((await postYaml(stack, twoSteps(slug, 'v1', { delayMs: 1500 }))).status).to.equal(201);
    const started = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
    expect(started.status).to.equal(202);
    // Step a runs for 1.5 s; b's input (the part v2 changes) is mapped only after a finishes.
    await waitFor(
      async () => {
        const { body } = await api<{ steps: Array<{ id: string; status: string }> }>(stack, 'GET', `/v1/runs/${started.body.id}`);
        return body.steps.find((s) => s.id === 'a')?.status === 'running' ? true : undefined;
      },
      10_000,
      'step a to start',
    );
    const v2 = await postYaml<DefinitionVersionView>(stack, twoSteps(slug, 'v2', { delayMs: 1 }));
    expect(v2.body.version).to.equal(2);
    const during = await api<{ steps: Array<{ id: string; status: string }> }>(stack, 'GET', `/v1/runs/${started.body.id}`);
    expect(during.body.steps.find((s) => s.id === 'b')?.status).to.equal('pending');

    const latest = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: {} });
    const [oldRun, newRun] = await Promise.all([waitForRun(stack, started.body.id), waitForRun(stack, latest.body.id)]);
    expect(oldRun.status).to.equal('completed');
    expect(oldRun.output).to.deep.equal({ label: `${slug}-v1` });
    expect(newRun.output).to.deep.equal({ label: `${slug}-v2` });
    const views = await Promise.all(
      [oldRun.id, newRun.id].map(async (id) => (await api<{ version: number }>(stack, 'GET', `/v1/runs/${id}`)).body.version),
    );
    expect(views).to.deep.equal([1, 2]);
  });
});
