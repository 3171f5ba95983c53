/**
 * The one edge of "Redis down creates nothing" (README, Durability › Faults of infrastructure):
 * Redis fails after the availability check passed and after the run's transaction committed.
 * The run is then kept and answered 202, and it executes exactly once — whether its late flow
 * add lands when a frozen Redis thaws, or the reconciler re-creates the flow after a frozen Redis
 * was killed (the add lost with it) and came back empty. (A Redis already disconnected fails the
 * check: 503, nothing created — test/redis-outage.test.ts.) Against a private `redis-server`, with the API and workers in this process.
 */
import { expect } from 'chai';
import { sql } from 'drizzle-orm';
import { PrivateRedis, freePort } from './support/private-services.js';
import { api, startStack, storeDefinition, waitForRun, type Stack } from './support/stack.js';
import { testEnvironment } from './support/environment.js';

const DEFINITION = `
slug: redis-after-commit
version: 1
name: Redis fails after the commit
input: { type: object }
steps:
  - id: one
    type: function
    code: "function main() { return { v: 1 } }"
  - id: two
    type: function
    needs: [one]
    code: "function main(i) { return { v: i.v + 1 } }"
    with:
      v: \${{ steps.one.output.v }}
output:
  v: \${{ steps.two.output.v }}
`;

describe('Redis failing after a run committed', function () {
  this.timeout(120_000);
  let redis: PrivateRedis | undefined;
  let stack: Stack | undefined;

  before(async function () {
    redis = new PrivateRedis(await freePort());
    await redis.start();
    const { config } = await testEnvironment();
    stack = await startStack({
      config: {
        redis: { ...config.redis, url: redis.url },
        worker: { ...config.worker, reconcileIntervalMs: 1000 },
      },
    });
    await storeDefinition(stack, DEFINITION);
  });
  after(async function () {
    redis?.resume();
    if (redis && !redis.running) await redis.start(); // closing the workers needs it
    await stack?.close();
    await redis?.kill();
  });

  /** Executions of a run: its step attempts, and its steps' completion events. */
  async function executions(runId: string): Promise<{ attempts: number; completions: number }> {
    const [row] = await stack!.deps.database.db.execute<{ attempts: number; completions: number }>(sql`
      select (select count(*)::int from step_attempts where run_id = ${runId}) as attempts,
             (select count(*)::int from run_events where run_id = ${runId} and type = 'step.completed') as completions`);
    return row ?? { attempts: -1, completions: -1 };
  }

  /**
   * Pass the availability check (trusted for AVAILABILITY_FRESH_MS), freeze Redis, and start a
   * run within that window; a start that missed the window (503, nothing created) is tried again.
   */
  async function startAfterCheck(): Promise<{ status: number; id: string; ms: number }> {
    for (let tries = 1; ; tries += 1) {
      await stack!.deps.queues.ensureAvailable();
      redis!.pause();
      const t0 = Date.now();
      const res = await api<{ id: string }>(stack!, 'POST', '/v1/runs', { definition: 'redis-after-commit', input: {} });
      if (res.status !== 503 || tries >= 10) return { status: res.status, id: res.body.id, ms: Date.now() - t0 };
      redis!.resume();
    }
  }

  it('frozen Redis: 202 within 2 s, and the late flow add makes it run once', async function () {
    const started = await startAfterCheck();
    redis!.resume();
    expect(started.status).to.equal(202);
    expect(started.ms, `answered in ${started.ms} ms`).to.be.below(2000);
    const run = await waitForRun(stack!, started.id, 60_000);
    expect(run.status).to.equal('completed');
    expect(run.output).to.deep.equal({ v: 2 });
    expect(await executions(started.id)).to.deep.equal({ attempts: 2, completions: 2 });
  });

  it('Redis lost while frozen, back empty: 202, and the reconciler makes it run once', async function () {
    const started = await startAfterCheck();
    await redis!.kill(); // the flow add it never answered is lost with it
    expect(started.status).to.equal(202);
    expect(started.ms, `answered in ${started.ms} ms`).to.be.below(2000);
    const [row] = await stack!.deps.database.db.execute<{ status: string }>(sql`select status from runs where id = ${started.id}`);
    expect(row?.status).to.equal('queued');
    await redis!.start();
    const run = await waitForRun(stack!, started.id, 60_000);
    expect(run.status).to.equal('completed');
    expect(run.output).to.deep.equal({ v: 2 });
    expect(await executions(started.id)).to.deep.equal({ attempts: 2, completions: 2 });
  });
});
