/**
 * Transient Postgres errors are infrastructure, never the work's failure (issue 12 item 6). A
 * private Postgres cluster with a small `max_connections` serves a web + two workers started from
 * the Procfile. While 20 runs execute, the test repeatedly takes every free connection slot
 * (so new connections get 53300 "too many clients") and terminates every Baton backend
 * (`pg_terminate_backend`: 57P01 on the connections in use, and reconnects refused with 53300),
 * then lets go. Every step has the default single attempt, so an infrastructure error charged to
 * a step would fail its run. Afterwards every run has completed, no step failed or retried, the
 * API answered only 200 or 503 (with `Retry-After`), and no process exited.
 */
import { expect } from 'chai';
import postgres from 'postgres';
import { startLocalStack, type LocalStack } from '../scripts/local-stack.js';
import { testEnvironment } from './support/environment.js';
import { PrivateCluster, freePort } from './support/private-services.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { waitFor } from './support/stack.js';

const RUNS = 20;
/** Fault cycles at least (more while runs are unfinished, up to {@link MAX_CYCLES}). */
const MIN_CYCLES = 4;
const MAX_CYCLES = 12;

const DEFINITION = `
slug: pg-faults
version: 1
name: Postgres faults
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
    foreach: \${{ [1, 2, 3, 4] }}
    concurrency: 2
    code: "function main(i) { return { y: i.x * 10 } }"
    with:
      x: \${{ item }}
  - id: keyed
    type: function
    needs: [start]
    code: |
      async function main(i, ctx) {
        await ctx.progress(0.5, 'saving');
        const asset = await ctx.assets.saveBuffer(Buffer.from('n=' + i.n), { name: 'n.txt', mimeType: 'text/plain' });
        const d = await ctx.deliverables.create({ title: 'N', kind: 'note', content: { n: i.n }, assetIds: [asset.id] });
        return { asset: asset.id, deliverable: d.id, tokenLength: i.token.length };
      }
    with:
      n: \${{ steps.start.output.n }}
      token: \${{ secrets.PG_FAULTS_TOKEN }}
  - id: finish
    type: function
    needs: [call, fan, keyed]
    code: "function main(i) { return { ok: i.fan.length === 4 && i.tokenLength === 6 } }"
    with:
      fan: \${{ steps.fan.output }}
      tokenLength: \${{ steps.keyed.output.tokenLength }}
output:
  ok: \${{ steps.finish.output.ok }}
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Postgres refusing and dropping connections while runs execute', function () {
  this.timeout(300_000);
  let cluster: PrivateCluster | undefined;
  let stack: LocalStack | undefined;
  let receiver: Receiver | undefined;
  let admin: postgres.Sql | undefined;
  const hog: postgres.Sql[] = [];

  before(async function () {
    cluster = new PrivateCluster(await freePort(), { max_connections: '30' });
    await cluster.init();
    await cluster.start();
  });
  after(async function () {
    await Promise.all(hog.map((c) => c.end({ timeout: 1 })));
    await stack?.stop();
    await admin?.end({ timeout: 2 });
    await receiver?.close();
    await cluster?.stop().catch(() => undefined);
    cluster?.remove();
  });

  it('retries 53300 and 57P01 without failing a step, a run or a process', async function () {
    const base = await testEnvironment();
    const port = await freePort();
    const url = `postgres://postgres@127.0.0.1:${cluster!.port}/baton`;
    const env: Record<string, string> = {
      ...base.env,
      LOG_LEVEL: process.env.TEST_STACK_LOG_LEVEL ?? 'fatal',
      PORT: String(port),
      BATON_PUBLIC_URL: `http://127.0.0.1:${port}`,
      DATABASE_URL: url,
      DATABASE_POOL_MAX: '4',
      QUEUE_PREFIX: `${base.env.QUEUE_PREFIX}-pgf`,
      RECONCILE_INTERVAL_MS: '2000',
    };
    receiver = await startReceiver(base.config.auth.webhookSecret);
    receiver.delays.set('/slow', 300);
    stack = await startLocalStack(env, 2, () => undefined);
    const exits: string[] = [];
    for (const child of stack.children) child.once('exit', (code, signal) => exits.push(`${child.pid}: ${code ?? signal}`));
    const headers = { authorization: `Bearer ${env.BATON_API_KEY}`, 'content-type': 'application/json' };
    const call = async (method: string, path: string, body?: string, contentType = 'application/json') => {
      const res = await fetch(`${stack!.baseUrl}${path}`, { method, headers: { ...headers, 'content-type': contentType }, ...(body === undefined ? {} : { body }) });
      await res.text();
      return { status: res.status, retryAfter: res.headers.get('retry-after') };
    };
    expect((await call('POST', '/v1/secrets', JSON.stringify({ name: 'PG_FAULTS_TOKEN', value: 'secret' }))).status).to.equal(201);
    expect((await call('POST', '/v1/definitions', DEFINITION, 'application/yaml')).status).to.equal(201);
    admin = postgres(url, { max: 1, onnotice: () => undefined });
    await admin`select 1`;

    const runIds: string[] = [];
    for (let n = 0; n < RUNS; n += 1) {
      const res = await fetch(`${stack.baseUrl}/v1/runs`, { method: 'POST', headers, body: JSON.stringify({ definition: 'pg-faults', input: { n, url: `${receiver.url}/slow` } }) });
      expect(res.status).to.equal(202);
      runIds.push(((await res.json()) as { id: string }).id);
    }
    const unfinished = async () => {
      const [row] = await admin!<{ n: number }[]>`select count(*)::int as n from runs where id = any(${runIds}::uuid[]) and status not in ('completed', 'failed', 'cancelled')`;
      return row?.n ?? 0;
    };

    const answers: Array<{ status: number; retryAfter: string | null }> = [];
    let refusedConnections = 0;
    let terminated = 0;
    for (let cycle = 0; cycle < MAX_CYCLES && (cycle < MIN_CYCLES || (await unfinished()) > 0); cycle += 1) {
      // Take every free slot: the next connection anyone opens is refused with 53300.
      for (;;) {
        const conn = postgres(url, { max: 1, onnotice: () => undefined, connect_timeout: 5 });
        try {
          await conn`select 1`;
          hog.push(conn);
        } catch (err) {
          await conn.end({ timeout: 1 });
          expect((err as { code?: string }).code, String(err)).to.equal('53300');
          break;
        }
      }
      // Drop Baton's connections, twice a cycle: the queries in flight fail with 57P01, the
      // reconnects with 53300.
      const until = Date.now() + 3000;
      for (let drop = 0; Date.now() < until; drop += 1) {
        if (drop % 10 === 0) {
          const killed = await admin<{ n: number }[]>`
            select count(*)::int as n from (select pg_terminate_backend(pid) from pg_stat_activity where application_name like 'baton-%') t`;
          terminated += killed[0]?.n ?? 0;
        }
        answers.push(await call('GET', `/v1/runs/${runIds[0]}`));
        answers.push(await call('GET', '/v1/runs?limit=5'));
        await sleep(100);
      }
      const logs = await cluster!.countInLog('sorry, too many clients already');
      refusedConnections = logs;
      await Promise.all(hog.splice(0).map((c) => c.end({ timeout: 1 })));
      await sleep(700);
    }

    const statuses = [...new Set(answers.map((a) => a.status))].sort();
    expect(statuses.every((s) => s === 200 || s === 503), JSON.stringify(statuses)).to.equal(true);
    expect(answers.filter((a) => a.status === 503).every((a) => a.retryAfter !== null)).to.equal(true);
    expect(refusedConnections, 'connections refused with 53300').to.be.greaterThan(0);
    expect(terminated, 'Baton backends terminated').to.be.greaterThan(0);

    const counts = await waitFor(
      async () => {
        const rows = await admin!<{ status: string; n: number }[]>`
          select status, count(*)::int as n from runs where id = any(${runIds}::uuid[]) group by status`;
        const byStatus = Object.fromEntries(rows.map((r) => [r.status, r.n])) as Record<string, number>;
        const finished = (byStatus.completed ?? 0) + (byStatus.failed ?? 0) + (byStatus.cancelled ?? 0);
        return finished === RUNS ? byStatus : undefined;
      },
      150_000,
      'every run to finish',
    );
    expect(counts).to.deep.equal({ completed: RUNS });
    const [failures] = await admin<{ n: number }[]>`
      select count(*)::int as n from run_events where run_id = any(${runIds}::uuid[]) and type in ('step.failed', 'step.retrying', 'run.failed')`;
    expect(failures?.n, 'step failures or retries recorded').to.equal(0);
    const [ok] = await admin<{ n: number }[]>`select count(*)::int as n from runs where id = any(${runIds}::uuid[]) and output->>'ok' = 'true'`;
    expect(ok?.n).to.equal(RUNS);
    expect(exits, 'processes that exited').to.deep.equal([]);
    const by503 = answers.filter((a) => a.status === 503).length;
    process.stdout.write(
      `      [figures] ${terminated} backends terminated, ${refusedConnections} connections refused (53300); API ${answers.length} reads: ${answers.length - by503} × 200, ${by503} × 503; ${RUNS}/${RUNS} runs completed, 0 step failures\n`,
    );
  });
});
