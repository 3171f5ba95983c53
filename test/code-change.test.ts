/**
 * The code-change pipeline end to end (issue 11), through the HTTP API with in-process workers,
 * real Redis and Postgres: the rule-based planner, codemod builds in the function runtime, the
 * repository's own tests in a sandboxed child process, the review checkpoint, and the patch
 * applied with `git apply` to a repository written here (never seen by the project).
 */
import { expect } from 'chai';
import { api, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { gitApply, nodeTest, writeRepo, type RepoFiles } from './support/repos.js';
import { uniqueSlug } from './support/test-agents.js';

interface ApprovalView {
  id: string;
  runId: string;
  stepId: string;
  status: string;
  attempt?: number;
  prompt: string;
  show: { plan: Array<{ goal: string; module: string | null }>; diff: string; report: { passed: boolean; tests: { pass: number; fail: number } | null } };
}

/** A small ES-module repository with its own tests: shapes and their areas. */
const GEOMETRY: RepoFiles = {
  'package.json': JSON.stringify({ name: 'geometry', version: '1.0.0', type: 'module', scripts: { test: 'node --test' } }, null, 2) + '\n',
  'src/area.js': [
    '/** Area of a shape {kind, ...}. */',
    'export function area(shape) {',
    "  if (shape.kind === 'circle') return Math.PI * shape.r ** 2;",
    "  if (shape.kind === 'rect') return shape.w * shape.h;",
    "  throw new Error('area: unknown kind ' + shape.kind);",
    '}',
    '',
  ].join('\n'),
  'src/report.js': [
    "import { area } from './area.js';",
    '',
    'export function report(shapes) {',
    '  const total = shapes.reduce((sum, s) => sum + area(s), 0);',
    "  const label = 'area';",
    '  const byKind = shapes.map((s) => ({ kind: s.kind, area: area(s) }));',
    '  return { label, total, largest: byKind.sort((a, b) => b.area - a.area)[0] };',
    '}',
    '',
    'export function scaled(area, factor) {',
    '  return area * factor * factor;',
    '}',
    '',
  ].join('\n'),
  'test/area.test.js': [
    "import { test } from 'node:test';",
    "import assert from 'node:assert/strict';",
    "import { area } from '../src/area.js';",
    "import { report, scaled } from '../src/report.js';",
    '',
    "test('areas', () => {",
    "  assert.equal(area({ kind: 'rect', w: 2, h: 3 }), 6);",
    "  assert.throws(() => area({ kind: 'blob' }), /unknown kind/);",
    '});',
    '',
    "test('report', () => {",
    "  const r = report([{ kind: 'rect', w: 1, h: 1 }, { kind: 'rect', w: 2, h: 2 }]);",
    "  assert.deepEqual(r, { label: 'area', total: 5, largest: { kind: 'rect', area: 4 } });",
    '  assert.equal(scaled(2, 3), 18);',
    '});',
    '',
  ].join('\n'),
};

describe('code-change pipeline', function () {
  this.timeout(120_000);
  let stack: Stack;

  before(async function () {
    stack = await startStack();
  });
  after(async function () {
    await stack?.close();
  });

  async function startRun(definition: string, input: unknown): Promise<string> {
    const res = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition, input });
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
    return res.body.id;
  }

  async function pendingReview(runId: string, after?: string): Promise<ApprovalView> {
    const item = await waitFor(
      async () => {
        const { body } = await api<{ items: Array<{ id: string; runId: string; stepId: string }> }>(stack, 'GET', '/v1/approvals?status=pending&limit=200');
        return body.items.find((a) => a.runId === runId && a.stepId === 'review' && a.id !== after);
      },
      90_000,
      `the review approval of ${runId}`,
    );
    const { body } = await api<ApprovalView>(stack, 'GET', `/v1/approvals/${item.id}`);
    return body;
  }

  async function decide(approvalId: string, body: Record<string, unknown>): Promise<void> {
    const res = await api(stack, 'POST', `/v1/approvals/${approvalId}/decision`, body);
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
  }

  async function assetText(runId: string, assetId: string): Promise<string> {
    const res = await fetch(`${stack.baseUrl}/v1/runs/${runId}/assets/${assetId}`, { headers: { authorization: `Bearer ${stack.apiKey}` } });
    expect(res.status).to.equal(200);
    return res.text();
  }

  it('renames X to Y in an unseen repository; the reviewed diff applies with git apply and its tests pass', async function () {
    const runId = await startRun('code-change', { repo: { files: GEOMETRY }, goals: ['rename `area` to `surfaceArea`'] });
    const review = await pendingReview(runId);
    expect(review.prompt).to.contain('deterministic rule-based planner').and.to.contain('tests passed');
    expect(review.show.plan).to.deep.equal([{ goal: 'rename `area` to `surfaceArea`', module: 'rename-symbol@1', options: { from: 'area', to: 'surfaceArea' } }]);
    expect(review.show.report.passed).to.equal(true);
    expect(review.show.report.tests).to.deep.equal({ pass: 2, fail: 0 });
    expect(review.show.diff).to.contain('+export function surfaceArea(shape) {');
    await decide(review.id, { decision: 'continue', comment: 'looks right' });

    const run = await waitForRun(stack, runId, 60_000);
    expect(run.status, JSON.stringify(run.error)).to.equal('completed');
    const output = run.output as { diffAssetId: string; passed: boolean; changed: string[]; planner: string };
    expect(output.planner).to.equal('rules');
    expect(output.passed).to.equal(true);
    expect(output.changed).to.deep.equal(['src/area.js', 'src/report.js', 'test/area.test.js']);

    const patch = await assetText(runId, output.diffAssetId);
    const root = await writeRepo(GEOMETRY);
    await gitApply(root, patch);
    const after = await nodeTest(root);
    expect(after.code, after.output).to.equal(0);
    expect(after.output).to.match(/^# pass 2$/m);
    const { readFile } = await import('node:fs/promises');
    const report = await readFile(`${root}/src/report.js`, 'utf8');
    expect(report).to.contain("import { surfaceArea } from './area.js';");
    expect(report, 'the string stays').to.contain("const label = 'area';");
    expect(report, 'the property stays').to.contain('area: surfaceArea(s)').and.to.contain('b.area - a.area');
    expect(report, 'the parameter shadowing it stays').to.contain('export function scaled(area, factor) {\n  return area * factor * factor;');
  });

  it("retry at the review re-runs build with the reviewer's items and notes", async function () {
    const runId = await startRun('code-change', { repo: { files: GEOMETRY }, goals: ['rename `area` to `areaOf`', 'make it faster'] });
    const first = await pendingReview(runId);
    expect(first.show.plan.map((p) => p.module)).to.deep.equal(['rename-symbol@1', null]);
    await decide(first.id, {
      decision: 'retry',
      input: [{ goal: 'rename area', module: 'rename-symbol@1', options: { from: 'area', to: 'shapeArea' }, notes: 'shapeArea matches the docs' }],
      comment: 'use the documented name',
    });
    const second = await pendingReview(runId, first.id);
    expect(second.show.diff).to.contain('+export function shapeArea(shape) {').and.not.to.contain('areaOf');
    await decide(second.id, { decision: 'continue' });
    const run = await waitForRun(stack, runId, 60_000);
    expect(run.status).to.equal('completed');
    const build = run.steps.find((s) => s.id === 'build')?.output as Array<{ notes: string | null; module: string }>;
    expect(build).to.have.length(1);
    expect(build[0]).to.include({ notes: 'shapeArea matches the docs', module: 'rename-symbol@1' });
  });

  it('reports a test failure of the changed repository as passed: false at the review', async function () {
    const broken = { ...GEOMETRY, 'test/extra.test.js': "import { test } from 'node:test';\ntest('fails', () => { throw new Error('boom'); });\n" };
    const runId = await startRun('code-change', { repo: { files: broken }, goals: ['rename `area` to `surfaceArea`'] });
    const review = await pendingReview(runId);
    expect(review.show.report.passed).to.equal(false);
    expect(review.show.report.tests).to.deep.equal({ pass: 2, fail: 1 });
    await decide(review.id, { decision: 'abort', comment: 'tests fail' });
    expect((await waitForRun(stack, runId)).status).to.equal('cancelled');
  });

  it('runs the tests without network', async function () {
    const files: RepoFiles = {
      'package.json': JSON.stringify({ name: 'net', type: 'module', scripts: { test: 'node --test' } }),
      'src/x.js': 'export const x = 1;\n',
      'test/net.test.js': [
        "import { test } from 'node:test';",
        "import assert from 'node:assert/strict';",
        "import net from 'node:net';",
        "test('cannot connect', async () => {",
        "  const error = await new Promise((resolve) => { const s = net.connect(6379, '127.0.0.1', () => resolve(null)); s.on('error', resolve); });",
        "  assert.ok(error, 'a connection to 127.0.0.1:6379 must fail');",
        '});',
        '',
      ].join('\n'),
    };
    const runId = await startRun('code-change', { repo: { files }, goals: ['rename `x` to `y`'] });
    const review = await pendingReview(runId);
    expect(review.show.report.passed, JSON.stringify(review.show.report)).to.equal(true);
    await decide(review.id, { decision: 'abort' });
  });

  it('a definition of its own running no-forbidden-imports@1 reports a planted violation at file:line', async function () {
    const slug = uniqueSlug('lint');
    await storeDefinition(
      stack,
      [
        `slug: ${slug}`,
        'version: 1',
        'name: Lint a repository',
        'input: { type: object, required: [repo], properties: { repo: { type: object } } }',
        'steps:',
        '  - id: lint',
        '    type: function',
        '    module: no-forbidden-imports@1',
        '    limits: { timeout: 30s, memoryMb: 256 }',
        '    with:',
        '      files: ${{ input.repo.files }}',
        '      options: { forbidden: [request, lodash] }',
        'output:',
        '  findings: ${{ steps.lint.output.findings }}',
        '',
      ].join('\n'),
    );
    const files = { ...GEOMETRY, 'src/fetch.js': "// fetches remote shapes\n\nconst request = require('request');\nmodule.exports = request;\n" };
    const run = await waitForRun(stack, await startRun(slug, { repo: { files } }), 60_000);
    expect(run.status, JSON.stringify(run.error)).to.equal('completed');
    const findings = (run.output as { findings: Array<{ file: string; line: number; column: number; rule: string }> }).findings;
    expect(findings.map((f) => `${f.file}:${f.line}:${f.column}`)).to.deep.equal(['src/fetch.js:3:25']);
    expect(findings[0]?.rule).to.equal('no-forbidden-imports');
  });
});

describe('dry runs of code-change and orchestrations', function () {
  this.timeout(60_000);
  let stack: Stack;
  before(async function () {
    stack = await startStack({ workers: false });
  });
  after(async function () {
    await stack?.close();
  });

  interface Job {
    id: string;
    stepId: string;
    kind: string;
    known: boolean;
    dependsOn?: string[];
    item?: unknown;
    child?: { definition: { slug: string }; input: unknown; plan: { jobs: Job[] } } | { known: false; dependsOn: string[] };
  }
  interface Plan {
    jobs: Job[];
    steps: Array<{ id: string; runs: unknown; items?: { known: boolean; count?: number } }>;
  }

  it('enumerates one build job per goal, the checkpoint, and marks what depends on step outputs', async function () {
    const goals = ['rename `a` to `b`', 'convert require to import', 'rename `c` to `d`'];
    const res = await api<{ plan: Plan }>(stack, 'POST', '/v1/runs?dryRun=true', { definition: 'code-change', input: { repo: { files: GEOMETRY }, goals } });
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    const { jobs, steps } = res.body.plan;
    expect(jobs.map((j) => [j.id, j.kind, j.known])).to.deep.equal([
      ['plan', 'step', true],
      ['build[0]', 'item', true],
      ['build[1]', 'item', true],
      ['build[2]', 'item', true],
      ['test', 'step', true],
      ['review', 'checkpoint', true],
    ]);
    expect(jobs.filter((j) => j.stepId === 'build').map((j) => j.item)).to.deep.equal(goals);
    expect(steps.find((s) => s.id === 'publish')?.runs, 'no publishUrl: publish is skipped').to.equal(false);
    const withUrl = await api<{ plan: Plan }>(stack, 'POST', '/v1/runs?dryRun=true', {
      definition: 'code-change',
      input: { repo: { files: GEOMETRY }, goals, publishUrl: 'http://127.0.0.1:9/patches' },
    });
    expect(withUrl.body.plan.jobs.at(-1)).to.deep.include({ id: 'publish', known: true });
  });

  it('marks a fan-out over step outputs as unknown, naming the step', async function () {
    const slug = uniqueSlug('dry-fan');
    await storeDefinition(
      stack,
      [
        `slug: ${slug}`,
        'version: 1',
        'name: fan',
        'input: { type: object }',
        'steps:',
        '  - { id: list, type: function, code: "function main() { return [1, 2] }" }',
        '  - id: each',
        '    type: function',
        '    needs: [list]',
        '    foreach: ${{ steps.list.output }}',
        '    code: "function main(i) { return i }"',
        '',
      ].join('\n'),
    );
    const res = await api<{ plan: Plan }>(stack, 'POST', '/v1/runs?dryRun=true', { definition: slug, input: {} });
    expect(res.body.plan.jobs).to.deep.equal([
      { id: 'list', stepId: 'list', kind: 'step', known: true },
      { id: 'each[*]', stepId: 'each', kind: 'item', known: false, dependsOn: ['list'] },
    ]);
  });

  it("plans an orchestrator step's child run from the input, and leaves one fed by step outputs unknown", async function () {
    const slug = uniqueSlug('dry-child');
    await storeDefinition(
      stack,
      [
        `slug: ${slug}`,
        'version: 1',
        'name: child plans',
        'input: { type: object }',
        'steps:',
        '  - id: change',
        '    type: orchestrator',
        '    run: { slug: code-change }',
        '    with: { repo: "${{ input.repo }}", goals: "${{ input.goals }}" }',
        '  - id: later',
        '    type: orchestrator',
        '    needs: [change]',
        '    run: { slug: code-change }',
        '    with: { repo: "${{ input.repo }}", goals: "${{ steps.change.output.plan.goal }}" }',
        '',
      ].join('\n'),
    );
    const goals = ['rename `a` to `b`', 'rename `c` to `d`'];
    const res = await api<{ plan: Plan }>(stack, 'POST', '/v1/runs?dryRun=true', { definition: slug, input: { repo: { files: GEOMETRY }, goals } });
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    const [change, later] = res.body.plan.jobs;
    const child = change?.child as { definition: { slug: string }; plan: { jobs: Job[] } };
    expect(child.definition.slug).to.equal('code-change');
    expect(child.plan.jobs.filter((j) => j.stepId === 'build').map((j) => j.id)).to.deep.equal(['build[0]', 'build[1]']);
    expect(later).to.deep.include({ id: 'later', kind: 'child-run', known: false, dependsOn: ['change'] });
  });

  it("lists an orchestrator agent's child runs with their own plans", async function () {
    const res = await api<{ plan: Plan }>(stack, 'POST', '/v1/runs?dryRun=true', {
      definition: 'portfolio-review',
      input: {
        from: '2005-01-01',
        to: '2006-12-31',
        portfolios: [
          { name: 'tech', symbols: ['AAPL', 'MSFT'] },
          { name: 'retail', symbols: ['AMZN'] },
        ],
      },
    });
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    const children = res.body.plan.jobs.filter((j) => j.kind === 'child-run');
    expect(children.map((j) => j.id)).to.deep.equal(['review[0]', 'review[1]']);
    const first = children[0]?.child as { definition: { slug: string }; input: unknown; plan: { jobs: Job[] } };
    expect(first.definition.slug).to.equal('kpi-tracking');
    expect(first.input).to.deep.equal({ symbols: ['AAPL', 'MSFT'], from: '2005-01-01', to: '2006-12-31' });
    expect(first.plan.jobs.map((j) => j.id)).to.deep.equal(['load', 'kpis', 'review', 'summary']);
  });
});
