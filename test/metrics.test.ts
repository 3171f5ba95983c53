/**
 * `/metrics` and `GET /v1/stats` after a real run (function step, http step, webhook to a local
 * receiver): `promtool check metrics` (Debian package `prometheus`) accepts the exposition of web
 * and of a worker's `METRICS_PORT` server, and the named series move.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { projectRoot, serveMetrics, silentLogger } from '../lib/index.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { api, startStack, storeDefinition, waitFor, waitForRun, type Stack } from './support/stack.js';
import { uniqueSlug } from './support/test-agents.js';

/**
 * Run `promtool check metrics` on an exposition.
 * @returns promtool's output (its findings), failing the test when it rejects the text.
 * @throws when promtool is not installed, naming the package.
 */
function promtoolCheck(text: string): string {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (result.error && (result.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error('promtool is not installed: install the Debian package "prometheus" (apt-get install -y prometheus); .ci/run does');
  }
  const output = `${result.stdout}${result.stderr}`;
  expect(result.status, `promtool check metrics:\n${output}`).to.equal(0);
  return output;
}

/** The value of one sample `name{labels}` in an exposition (labels in any order), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found: Record<string, string | undefined> = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((l): [string, string | undefined] => [l[1] ?? '', l[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(m[3]);
  }
  return undefined;
}

async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  expect(response.status).to.equal(200);
  expect(response.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

describe('metrics and stats', function () {
  this.timeout(90_000);
  let stack: Stack;
  let receiver: Receiver;
  let slug: string;

  before(async function () {
    stack = await startStack();
    receiver = await startReceiver(stack.config.auth.webhookSecret);
    slug = uniqueSlug('metrics');
    await storeDefinition(
      stack,
      `
slug: ${slug}
version: 1
name: Metrics
input: { type: object, properties: { url: { type: string } } }
steps:
  - id: call
    type: http
    with:
      method: GET
      url: \${{ input.url & '/effect' }}
  - id: shape
    type: function
    needs: [call]
    code: "function main(input) { return { status: input.status } }"
    with:
      status: \${{ steps.call.output.status }}
`,
    );
  });
  after(async function () {
    await receiver?.close();
    await stack?.close();
  });

  it('web: promtool accepts /metrics and the named series move after a run', async function () {
    const before = await scrape(`${stack.baseUrl}/metrics`);
    promtoolCheck(before);
    const completedBefore = sample(before, 'baton_runs_total', { definition: slug, status: 'completed' }) ?? 0;
    const functionStepsBefore = sample(before, 'baton_step_duration_seconds_count', { agent_type: 'function', outcome: 'completed' }) ?? 0;
    const deliveredBefore = sample(before, 'baton_webhook_deliveries_total', { outcome: 'delivered' }) ?? 0;

    const { status, body } = await api<{ id: string }>(stack, 'POST', '/v1/runs', { definition: slug, input: { url: receiver.url }, webhookUrl: `${receiver.url}/webhooks` });
    expect(status).to.equal(202);
    const run = await waitForRun(stack, body.id);
    expect(run.status, JSON.stringify(run.error)).to.equal('completed');
    await waitFor(async () => (receiver.webhooks.some((w) => w.type === 'run.completed' && w.data.runId === body.id) ? true : undefined), 20_000, 'the run.completed webhook');

    // The webhook counter moves once BullMQ's processor returned (just after the receiver answered).
    const after = await waitFor(
      async () => {
        const text = await scrape(`${stack.baseUrl}/metrics`);
        return (sample(text, 'baton_webhook_deliveries_total', { outcome: 'delivered' }) ?? 0) > deliveredBefore ? text : undefined;
      },
      10_000,
      'baton_webhook_deliveries_total{outcome="delivered"} to move',
    );
    promtoolCheck(after);
    expect(sample(after, 'baton_runs_total', { definition: slug, status: 'completed' })).to.equal(completedBefore + 1);
    expect(sample(after, 'baton_step_duration_seconds_count', { agent_type: 'function', outcome: 'completed' })).to.equal(functionStepsBefore + 1);
    expect(sample(after, 'baton_step_duration_seconds_count', { agent_type: 'api', outcome: 'completed' })).to.be.at.least(1);
    expect(sample(after, 'baton_step_duration_seconds_bucket', { agent_type: 'function', outcome: 'completed', le: '+Inf' })).to.be.at.least(1);
    expect(sample(after, 'baton_http_request_duration_seconds_count', { route: '/v1/runs', method: 'POST', status: '202' })).to.be.at.least(1);
    expect(sample(after, 'baton_http_request_duration_seconds_count', { route: '/v1/runs/:id', method: 'GET', status: '200' })).to.be.at.least(1);
    expect(sample(after, 'baton_queue_jobs', { queue: 'runs', state: 'completed' })).to.be.at.least(1);
    expect(sample(after, 'baton_queue_jobs', { queue: 'agent-function', state: 'completed' })).to.be.at.least(1);
    expect(sample(after, 'baton_approvals_pending')).to.be.a('number');
    expect(sample(after, 'baton_approval_oldest_age_seconds')).to.be.a('number');
    expect(sample(after, 'process_cpu_user_seconds_total'), "Node's default metrics").to.be.a('number');
    expect(sample(after, 'nodejs_eventloop_lag_seconds')).to.be.a('number');
  });

  it('worker: the METRICS_PORT server serves the same registry, accepted by promtool', async function () {
    const server = await serveMetrics(0, silentLogger());
    try {
      const text = await scrape(`http://127.0.0.1:${server.port}/metrics`);
      promtoolCheck(text);
      expect(sample(text, 'baton_step_duration_seconds_count', { agent_type: 'function', outcome: 'completed' })).to.be.at.least(1);
      expect((await fetch(`http://127.0.0.1:${server.port}/other`)).status).to.equal(404);
    } finally {
      await server.close();
    }
  });

  it('docs/grafana-dashboard.json: promtool parses every query, and each baton_* series exists', async function () {
    const dashboard = JSON.parse(readFileSync(join(projectRoot(), 'docs', 'grafana-dashboard.json'), 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    expect(exprs.length).to.be.greaterThan(8);
    // As recording rules, so `promtool check rules` parses each PromQL expression.
    const rules = { groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr })) }] };
    const dir = mkdtempSync(join(tmpdir(), 'baton-dashboard-'));
    try {
      writeFileSync(join(dir, 'rules.json'), JSON.stringify(rules));
      const result = spawnSync('promtool', ['check', 'rules', join(dir, 'rules.json')], { encoding: 'utf8' });
      if (result.error) throw new Error('promtool is not installed: install the Debian package "prometheus" (apt-get install -y prometheus)');
      expect(result.status, `${result.stdout}${result.stderr}`).to.equal(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const exposition = await scrape(`${stack.baseUrl}/metrics`);
    const names = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(baton_[a-z_]+|nodejs_[a-z0-9_]+)/g)].map((m) => m[1] ?? '')));
    for (const name of names) expect(exposition, name).to.match(new RegExp(`^${name}[{ ]`, 'm'));
  });

  it('GET /v1/stats: runs by status per definition, run and step percentiles, approvals', async function () {
    const { status, body } = await api<{
      window: string;
      runs: Array<{ definition: string; total: number; byStatus: Record<string, number>; duration: { count: number; p50Ms: number; p95Ms: number } }>;
      steps: Array<{ agentType: string; duration: { count: number; p50Ms: number; p95Ms: number } }>;
      approvals: { pending: number; oldestAgeSeconds: number | null };
    }>(stack, 'GET', '/v1/stats?window=1h');
    expect(status).to.equal(200);
    expect(body.window).to.equal('1h');
    const mine = body.runs.find((r) => r.definition === slug);
    expect(mine?.byStatus).to.deep.equal({ completed: 1 });
    expect(mine?.total).to.equal(1);
    expect(mine?.duration.count).to.equal(1);
    expect(mine?.duration.p50Ms).to.be.greaterThan(0);
    expect(mine?.duration.p95Ms).to.equal(mine?.duration.p50Ms);
    const fn = body.steps.find((s) => s.agentType === 'function');
    expect(fn?.duration.count).to.be.at.least(1);
    expect(fn?.duration.p95Ms).to.be.at.least(fn?.duration.p50Ms ?? 0);
    expect(body.steps.map((s) => s.agentType)).to.include('api');
    expect(body.approvals.pending).to.be.a('number');

    const defaulted = await api<{ window: string }>(stack, 'GET', '/v1/stats');
    expect(defaulted.body.window).to.equal('24h');
    const tooLong = await api<{ error: { field: string } }>(stack, 'GET', '/v1/stats?window=1y');
    expect(tooLong.status).to.equal(400);
    expect(tooLong.body.error.field).to.equal('window');
  });
});
