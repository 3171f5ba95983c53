/**
 * No process dies of a database restart (issue 13 C, E, F). A private Postgres cluster (initdb
 * into a temp dir, its own port) serves a web + two workers started from the Procfile; with 20
 * runs in flight the cluster is stopped and, a few seconds later, started again. While it is
 * down, data routes answer 503 with `Retry-After` within 2 s (never 500); afterwards every run
 * completes, and no process has exited. Every step has the default single attempt, so an
 * infrastructure error charged to a step would fail its run.
 */
import { expect } from 'chai';
import postgres from 'postgres';
import { startLocalStack, type LocalStack } from '../scripts/local-stack.js';
import { testEnvironment } from './support/environment.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { waitFor } from './support/stack.js';
import { PrivateCluster, freePort } from './support/private-services.js';

const RUNS = 20;

const DEFINITION = `
slug: pg-restart
version: 1
name: Postgres restart
input: { type: object, required: [n, url], properties: { n: { type: integer }, url: { type: string } } }
steps:
  - id: start
    type: function
    code: "function main(i) { return { n: i.n } }"
    with:
      n: \${{ input.n }}
  - id: call
    agent: marketing-swarm
    needs: [start]
    with:
      url: \${{ input.url }}
      payload:
        n: \${{ steps.start.output.n }}
  - id: fan
    type: function
    needs: [start]
    foreach: \${{ [1, 2, 3] }}
    concurrency: 2
    code: "function main(i) { return { y: i.x * 10 } }"
    with:
      x: \${{ item }}
  - id: finish
    type: function
    needs: [call, fan]
    code: "function main(i) { return { ok: i.fan.length === 3 } }"
    with:
      fan: \${{ steps.fan.output }}
output:
  ok: \${{ steps.finish.output.ok }}
`;

describe('a Postgres stop/start with runs in flight', function () {
  this.timeout(240_000);
  let cluster: PrivateCluster | undefined;
  let stack: LocalStack | undefined;
  let receiver: Receiver | undefined;
  let sql: postgres.Sql | undefined;

  before(async function () {
    cluster = new PrivateCluster(await freePort());
    await cluster.init();
    await cluster.start();
  });
  after(async function () {
    await stack?.stop();
    await sql?.end({ timeout: 2 });
    await receiver?.close();
    await cluster?.stop().catch(() => undefined);
    cluster?.remove();
  });

  it('no process exits, data routes answer 503 quickly while it is down, and every run completes', async function () {
    const base = await testEnvironment();
    const port = await freePort();
    const env: Record<string, string> = {
      ...base.env,
      LOG_LEVEL: 'fatal',
      PORT: String(port),
      BATON_PUBLIC_URL: `http://127.0.0.1:${port}`,
      DATABASE_URL: `postgres://postgres@127.0.0.1:${cluster!.port}/baton`,
      DATABASE_POOL_MAX: '8',
      QUEUE_PREFIX: `${base.env.QUEUE_PREFIX}-pgr`,
    };
    receiver = await startReceiver(base.config.auth.webhookSecret);
    receiver.delays.set('/slow', 1500);
    stack = await startLocalStack(env, 2, () => undefined);
    const exits: string[] = [];
    for (const child of stack.children) child.once('exit', (code, signal) => exits.push(`${child.pid}: ${code ?? signal}`));
    const headers = { authorization: `Bearer ${env.BATON_API_KEY}`, 'content-type': 'application/json' };
    const call = (method: string, path: string, body?: string, contentType = 'application/json') =>
      fetch(`${stack!.baseUrl}${path}`, { method, headers: { ...headers, 'content-type': contentType }, ...(body === undefined ? {} : { body }) });

    expect((await call('POST', '/v1/definitions', DEFINITION, 'application/yaml')).status).to.equal(201);
    const runIds: string[] = [];
    for (let n = 0; n < RUNS; n += 1) {
      const res = await call('POST', '/v1/runs', JSON.stringify({ definition: 'pg-restart', input: { n, url: `${receiver.url}/slow` } }));
      expect(res.status).to.equal(202);
      runIds.push(((await res.json()) as { id: string }).id);
    }
    await waitFor(async () => (receiver!.requests.some((r) => r.path === '/slow') ? true : undefined), 20_000, 'runs in flight');

    await cluster!.stop();
    const downAt = Date.now();
    const answers: Array<{ status: number; ms: number; retryAfter: string | null }> = [];
    while (Date.now() - downAt < 6000) {
      for (const [method, path, body] of [
        ['GET', `/v1/runs/${runIds[0]}`, undefined],
        ['GET', '/v1/runs?limit=5', undefined],
        ['POST', '/v1/runs', JSON.stringify({ definition: 'pg-restart', input: { n: 99, url: `${receiver.url}/slow` } })],
      ] as const) {
        const t0 = Date.now();
        const res = await call(method, path, body);
        await res.text();
        answers.push({ status: res.status, ms: Date.now() - t0, retryAfter: res.headers.get('retry-after') });
      }
    }
    await cluster!.start();

    const statuses = [...new Set(answers.map((a) => a.status))];
    expect(statuses, JSON.stringify(answers)).to.deep.equal([503]);
    expect(answers.every((a) => a.retryAfter !== null)).to.equal(true);
    const slowest = Math.max(...answers.map((a) => a.ms));
    expect(slowest, `slowest answer while down: ${slowest} ms`).to.be.below(2000);

    sql = postgres(env.DATABASE_URL ?? '', { max: 1, onnotice: () => undefined });
    const counts = await waitFor(
      async () => {
        const rows = await sql!<{ status: string; n: number }[]>`
          select status, count(*)::int as n from runs where id = any(${runIds}::uuid[]) and parent_run_id is null group by status`;
        const byStatus = Object.fromEntries(rows.map((r) => [r.status, r.n])) as Record<string, number>;
        const finished = (byStatus.completed ?? 0) + (byStatus.failed ?? 0) + (byStatus.cancelled ?? 0);
        return finished === RUNS ? byStatus : undefined;
      },
      150_000,
      'every run to finish after the restart',
    );
    expect(counts).to.deep.equal({ completed: RUNS });
    const [ok] = await sql<{ n: number }[]>`select count(*)::int as n from runs where id = any(${runIds}::uuid[]) and output->>'ok' = 'true'`;
    expect(ok?.n).to.equal(RUNS);
    expect(exits, 'processes that exited').to.deep.equal([]);
    process.stdout.write(
      `      [figures] ${answers.length} requests while down: all 503, slowest ${slowest} ms; ${RUNS}/${RUNS} runs completed\n`,
    );
  });
});
