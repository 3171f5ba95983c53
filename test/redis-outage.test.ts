/**
 * Redis going away is not a failure of the work (issue 12 item 6). A private `redis-server`
 * (no persistence) serves a web + one worker started from the Procfile. With runs in flight it
 * is killed; while it is down `POST /v1/runs` and `POST /v1/runs/:id/cancel` answer 503
 * `UNAVAILABLE` with `Retry-After` within 2 s and change nothing, reads served by Postgres still
 * answer, and `/readyz` names Redis. Then Redis starts again, empty: every run accepted before
 * completes (the reconciler re-creates their jobs from Postgres), no run refused with 503 exists,
 * a new run completes, and no process has exited.
 */
import { expect } from 'chai';
import postgres from 'postgres';
import { startLocalStack, type LocalStack } from '../scripts/local-stack.js';
import { testEnvironment } from './support/environment.js';
import { PrivateRedis, freePort } from './support/private-services.js';
import { startReceiver, type Receiver } from './support/receiver.js';
import { waitFor } from './support/stack.js';
import { AVAILABILITY_FRESH_MS } from '../queues/index.js';

const RUNS = 8;

const DEFINITION = `
slug: redis-outage
version: 1
name: Redis outage
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
  - id: finish
    type: function
    needs: [call]
    code: "function main(i) { return { ok: true, n: i.n } }"
    with:
      n: \${{ steps.start.output.n }}
output:
  ok: \${{ steps.finish.output.ok }}
`;

describe('Redis killed and restarted empty with runs in flight', function () {
  this.timeout(240_000);
  let redis: PrivateRedis | undefined;
  let stack: LocalStack | undefined;
  let receiver: Receiver | undefined;
  let sql: postgres.Sql | undefined;

  before(async function () {
    redis = new PrivateRedis(await freePort());
    await redis.start();
  });
  after(async function () {
    await stack?.stop();
    await sql?.end({ timeout: 2 });
    await receiver?.close();
    await redis?.kill();
  });

  it('answers 503 within 2 s while it is down, creates nothing then, and every accepted run completes once it is back', async function () {
    const base = await testEnvironment();
    const port = await freePort();
    const env: Record<string, string> = {
      ...base.env,
      LOG_LEVEL: process.env.TEST_STACK_LOG_LEVEL ?? 'fatal',
      PORT: String(port),
      BATON_PUBLIC_URL: `http://127.0.0.1:${port}`,
      REDIS_URL: redis!.url,
      RECONCILE_INTERVAL_MS: '2000',
      // Short locks: a renewal falls inside every outage below, as it may in production.
      STEP_LOCK_DURATION_MS: '2000',
    };
    receiver = await startReceiver(base.config.auth.webhookSecret);
    // Long enough that calls are in flight across the outages below.
    receiver.delays.set('/slow', 8000);
    stack = await startLocalStack(env, 1, () => undefined);
    const exits: string[] = [];
    for (const child of stack.children) child.once('exit', (code, signal) => exits.push(`${child.pid}: ${code ?? signal}`));
    const headers = { authorization: `Bearer ${env.BATON_API_KEY}`, 'content-type': 'application/json' };
    const call = async (method: string, path: string, body?: string, contentType = 'application/json') => {
      const t0 = Date.now();
      const res = await fetch(`${stack!.baseUrl}${path}`, { method, headers: { ...headers, 'content-type': contentType }, ...(body === undefined ? {} : { body }), signal: AbortSignal.timeout(30_000) });
      const text = await res.text();
      return { status: res.status, ms: Date.now() - t0, retryAfter: res.headers.get('retry-after'), body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    };
    const startOne = (n: number) => call('POST', '/v1/runs', JSON.stringify({ definition: 'redis-outage', input: { n, url: `${receiver!.url}/slow` } }));

    expect((await call('POST', '/v1/definitions', DEFINITION, 'application/yaml')).status).to.equal(201);
    const accepted: string[] = [];
    for (let n = 0; n < RUNS; n += 1) {
      const res = await startOne(n);
      expect(res.status, JSON.stringify(res.body)).to.equal(202);
      accepted.push(String(res.body.id));
    }
    await waitFor(async () => (receiver!.requests.some((r) => r.path === '/slow') ? true : undefined), 20_000, 'runs in flight');

    type Answer = { route: string; status: number; ms: number; retryAfter: string | null; code: unknown };
    /** For `ms`: start a run and cancel one (both must be refused), read one, look at /readyz. */
    const probeWhileDown = async (ms: number) => {
      const refused: Answer[] = [];
      const reads: number[] = [];
      let readiness: Record<string, unknown> = {};
      // A check passed just before is trusted for AVAILABILITY_FRESH_MS: a request in that window
      // takes the committed-run edge (202, test/redis-after-commit.test.ts), not this path.
      await new Promise((r) => setTimeout(r, AVAILABILITY_FRESH_MS + 50));
      const downAt = Date.now();
      while (Date.now() - downAt < ms) {
        for (const [route, attempt] of [
          ['start', () => startOne(1000 + refused.length)],
          ['cancel', () => call('POST', `/v1/runs/${accepted[0]}/cancel`, JSON.stringify({ reason: 'during the outage' }))],
        ] as const) {
          const res = await attempt();
          refused.push({ route, status: res.status, ms: res.ms, retryAfter: res.retryAfter, code: (res.body.error as { code?: unknown } | undefined)?.code });
        }
        reads.push((await call('GET', `/v1/runs/${accepted[1]}`)).status);
        const ready = await call('GET', '/readyz');
        readiness = { ...ready.body, http: ready.status };
        expect((await call('GET', '/healthz')).status).to.equal(200);
      }
      const summary = JSON.stringify(refused);
      expect([...new Set(refused.map((a) => a.status))], summary).to.deep.equal([503]);
      expect([...new Set(refused.map((a) => a.code))], summary).to.deep.equal(['UNAVAILABLE']);
      expect(refused.every((a) => a.retryAfter !== null), summary).to.equal(true);
      const slowest = Math.max(...refused.map((a) => a.ms));
      expect(slowest, `slowest answer while down: ${slowest} ms`).to.be.below(2000);
      expect([...new Set(reads)], 'reads served by Postgres').to.deep.equal([200]);
      expect(readiness.http, JSON.stringify(readiness)).to.equal(503);
      expect(readiness.postgres, JSON.stringify(readiness)).to.equal('ok');
      expect(readiness.redis, JSON.stringify(readiness)).to.not.equal('ok');
      return { refused: refused.length, slowest };
    };

    // Unreachable: frozen, its connections open and silent (what used to hang POST /v1/runs).
    redis!.pause();
    let paused: Awaited<ReturnType<typeof probeWhileDown>>;
    try {
      paused = await probeWhileDown(5000);
    } finally {
      redis!.resume();
    }
    // Gone: killed, then started again empty (no persistence).
    await redis!.kill();
    const killed = await probeWhileDown(5000);
    await redis!.start();

    // Back (and empty): a new run is accepted and runs, as does every run accepted before.
    const after = await waitFor(async () => {
      const res = await startOne(2000);
      return res.status === 202 ? res : undefined;
    }, 30_000, 'a run accepted once Redis is back');
    const all = [...accepted, String(after.body.id)];
    sql = postgres(env.DATABASE_URL ?? '', { max: 1, onnotice: () => undefined });
    const counts = await waitFor(
      async () => {
        const rows = await sql!<{ status: string; n: number }[]>`
          select status, count(*)::int as n from runs where id = any(${all}::uuid[]) group by status`;
        const byStatus = Object.fromEntries(rows.map((r) => [r.status, r.n])) as Record<string, number>;
        const finished = (byStatus.completed ?? 0) + (byStatus.failed ?? 0) + (byStatus.cancelled ?? 0);
        return finished === all.length ? byStatus : undefined;
      },
      150_000,
      'every accepted run to finish after Redis came back',
    );
    const failures = await sql<{ run_id: string; step_id: string; error: unknown }[]>`
      select run_id, step_id, error from steps where run_id = any(${all}::uuid[]) and status = 'failed'`;
    expect(counts, `failed steps: ${JSON.stringify(failures)}`).to.deep.equal({ completed: all.length });
    // Nothing refused with 503 was created: the definition's runs are exactly the accepted ones.
    const [total] = await sql<{ n: number }[]>`select count(*)::int as n from runs where definition_slug = 'redis-outage'`;
    expect(total?.n, 'runs of the definition (accepted ones only)').to.equal(all.length);
    const [failedSteps] = await sql<{ n: number }[]>`select count(*)::int as n from steps where run_id = any(${all}::uuid[]) and status <> 'completed'`;
    expect(failedSteps?.n, 'steps not completed').to.equal(0);
    expect(exits, 'processes that exited').to.deep.equal([]);
    process.stdout.write(
      `      [figures] Redis frozen: ${paused.refused} writes, all 503, slowest ${paused.slowest} ms; killed: ${killed.refused} writes, all 503, slowest ${killed.slowest} ms; ${all.length}/${all.length} accepted runs completed, none duplicated\n`,
    );
  });
});
