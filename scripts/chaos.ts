/**
 * `npm run chaos [-- --runs 200 --kill-every 2s]`: durability proof (SPEC R4, issue 3).
 *
 * Starts one `web` and three `worker` processes from the Procfile, creates (over the API) a
 * 12-step definition with a diamond, a fan-out of 5, a sub-orchestration, a step that fails twice
 * before succeeding and an api step calling a local receiver with its idempotency key, and starts
 * N runs. Every `--kill-every` it SIGKILLs a random worker and starts a new one. When half the
 * runs have finished it deletes every Redis key of the queue prefix and runs the reconciler.
 * At the end it checks, from Postgres and the receiver: every run completed; no step recorded
 * completed twice; every api-step effect arrived under exactly one idempotency key; no job left
 * in `waiting-children` or `active`. It prints the figures and exits non-zero on any shortfall.
 * Each invocation uses its own queue prefix and database (dropped when it passes), so leftovers
 * of earlier runs, or another checkout's chaos on the same Redis and Postgres, never mix in.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { QUEUE_NAMES, Queues, createRedis } from '../queues/index.js';
import { loadConfig, parseDurationMs, projectRoot, runEntry, silentLogger } from '../lib/index.js';
import { exited, spawnProcess } from './procfile.js';
import { StackError, checkServices, listen, readBody, stackEnvironment, startLocalStack, stopOnSignal } from './local-stack.js';

const CHILD = `
slug: chaos-child
name: Chaos child
input: { type: object, properties: { n: { type: integer } } }
steps:
  - id: double
    type: function
    code: "function main(i) { return { v: i.n * 2 } }"
    with:
      n: \${{ input.n }}
  - id: inc
    type: function
    needs: [double]
    code: "function main(i) { return { v: i.v + 1 } }"
    with:
      v: \${{ steps.double.output.v }}
output:
  v: \${{ steps.inc.output.v }}
`;

const PARENT = `
slug: chaos-run
name: Chaos proof (12 steps)
input:
  type: object
  required: [n, receiver]
  properties: { n: { type: integer }, receiver: { type: string } }
steps:
  - id: start
    type: function
    code: "function main(i) { return { n: i.n } }"
    with:
      n: \${{ input.n }}
  - id: left
    type: function
    needs: [start]
    code: "function main(i) { return { v: i.n + 1 } }"
    with:
      n: \${{ steps.start.output.n }}
  - id: right
    type: function
    needs: [start]
    code: "function main(i) { return { v: i.n * 2 } }"
    with:
      n: \${{ steps.start.output.n }}
  - id: join
    type: function
    needs: [left, right]
    code: "function main(i) { return { sum: i.a + i.b } }"
    with:
      a: \${{ steps.left.output.v }}
      b: \${{ steps.right.output.v }}
  - id: fan
    type: function
    needs: [start]
    foreach: \${{ [1, 2, 3, 4, 5] }}
    concurrency: 3
    code: "function main(i) { return { y: i.x * 10 } }"
    with:
      x: \${{ item }}
  - id: sub
    type: orchestrator
    needs: [start]
    run: { slug: chaos-child }
    with:
      n: \${{ steps.start.output.n }}
  - id: flaky
    agent: marketing-swarm
    needs: [join]
    retry: { attempts: 6, backoff: 100ms, maxDelay: 1s }
    with:
      url: \${{ input.receiver & '/flaky' }}
      payload:
        n: \${{ input.n }}
  - id: effect
    agent: marketing-swarm
    needs: [flaky]
    retry: { attempts: 6, backoff: 100ms, maxDelay: 1s }
    with:
      url: \${{ input.receiver & '/effect' }}
      payload:
        runId: \${{ run.id }}
  - id: gather
    type: function
    needs: [fan, sub, effect]
    code: "function main(i) { var s = 0; for (var k = 0; k < i.fan.length; k++) s += i.fan[k].y; return { fan: s, child: i.child } }"
    with:
      fan: \${{ steps.fan.output }}
      child: \${{ steps.sub.output.v }}
  - id: check_a
    type: function
    needs: [gather]
    code: "function main(i) { return { ok: i.fan === 150 } }"
    with:
      fan: \${{ steps.gather.output.fan }}
  - id: check_b
    type: function
    needs: [gather]
    code: "function main(i) { return { ok: i.child === i.n * 2 + 1 } }"
    with:
      child: \${{ steps.gather.output.child }}
      n: \${{ input.n }}
  - id: finish
    type: function
    needs: [check_a, check_b]
    code: "function main(i) { return { ok: i.a && i.b } }"
    with:
      a: \${{ steps.check_a.output.ok }}
      b: \${{ steps.check_b.output.ok }}
output:
  ok: \${{ steps.finish.output.ok }}
  sum: \${{ steps.join.output.sum }}
`;


async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '200' }, 'kill-every': { type: 'string', default: '2s' } } });
  const RUNS = Number(values.runs);
  const killEveryMs = parseDurationMs(values['kill-every'] ?? '');
  if (!Number.isInteger(RUNS) || RUNS < 1) throw new StackError(`--runs: expected a positive integer, got "${values.runs}"`);
  if (!killEveryMs) throw new StackError(`--kill-every: expected a duration such as 2s, got "${values['kill-every']}"`);
  const config = loadConfig();
  const shutdown = stopOnSignal(process, 'chaos', config);
  // Its own queue prefix and database, so that nothing else sharing this Redis and Postgres (an
  // earlier chaos run's leftovers, another checkout's chaos) runs our jobs or we theirs.
  const runTag = randomBytes(3).toString('hex');
  const prefix = `${config.redis.prefix}-chaos-${runTag}`;
  const databaseUrl = new URL(config.postgres.url);
  databaseUrl.pathname = `${databaseUrl.pathname.replace(/^\//, '') || 'baton'}_chaos_${runTag}`;
  // The project's settings as configured (its defaults unless the environment says otherwise):
  // chaos proves the configuration a deployment runs with, not a tuned one.
  const settings = {
    STEP_LOCK_DURATION_MS: String(config.worker.lockDurationMs),
    STALLED_INTERVAL_MS: String(config.worker.stalledIntervalMs),
    STALLED_MAX_COUNT: String(config.worker.maxStalledCount),
    RECONCILE_INTERVAL_MS: String(config.worker.reconcileIntervalMs),
  };
  const env = await stackEnvironment(config, { QUEUE_PREFIX: prefix, DATABASE_URL: databaseUrl.toString(), LOG_LEVEL: 'fatal', RATE_LIMIT_RUNS_PER_MINUTE: '0', ...settings });
  await checkServices(env);
  const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 23)}  ${line}\n`);
  log(`settings: ${JSON.stringify(settings)}; queue prefix ${prefix}, database ${databaseUrl.pathname.slice(1)}`);
  const startedAt = Date.now();

  // Receiver: /flaky fails twice per idempotency key, /effect records every call's key.
  const flakyCalls = new Map<string, number>();
  const effects = new Map<string, Set<string>>();
  let effectCalls = 0;
  const receiver = createServer((req, res) => {
    void readBody(req).then((body) => {
      const key = String(req.headers['idempotency-key'] ?? '');
      if (req.url === '/flaky') {
        const n = (flakyCalls.get(key) ?? 0) + 1;
        flakyCalls.set(key, n);
        res.writeHead(n <= 2 ? 503 : 200, { 'content-type': 'application/json', 'retry-after': '0' }).end('{}');
        return;
      }
      if (req.url === '/effect') {
        effectCalls += 1;
        const { runId } = JSON.parse(body) as { runId: string };
        const keys = effects.get(runId) ?? new Set<string>();
        keys.add(key);
        effects.set(runId, keys);
        setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), 50);
        return;
      }
      res.writeHead(404).end();
    });
  });
  const receiverUrl = `http://127.0.0.1:${await listen(receiver)}`;

  const stack = await startLocalStack(env, 3, log);
  shutdown.register('local stack', () => stack.stop());
  const headers = { authorization: `Bearer ${env.BATON_API_KEY}`, 'content-type': 'application/json' };
  const call = async <T>(method: string, path: string, body?: string, contentType = 'application/json') => {
    const res = await fetch(`${stack.baseUrl}${path}`, { method, headers: { ...headers, 'content-type': contentType }, ...(body === undefined ? {} : { body }) });
    return { status: res.status, body: (await res.json()) as T };
  };
  const sql = postgres(env.DATABASE_URL ?? '', { max: 2, onnotice: () => undefined });
  let killer: NodeJS.Timeout | undefined;
  let kills = 0;
  let failures: string[] = [];
  try {
    for (const [name, yaml] of [['chaos-child', CHILD], ['chaos-run', PARENT]] as const) {
      const created = await call<{ version: number; error?: { message: string } }>('POST', '/v1/definitions', yaml, 'application/yaml');
      if (created.status !== 201) throw new StackError(`POST /v1/definitions (${name}) answered ${created.status}: ${created.body.error?.message}`);
      log(`definition ${name} v${created.body.version} created over the API`);
    }

    // Kill a random worker every interval, and start a new one in its place.
    const workers = stack.children.slice(1);
    killer = setInterval(() => {
      const i = Math.floor(Math.random() * workers.length);
      const victim = workers[i];
      if (!victim) return;
      victim.kill('SIGKILL');
      kills += 1;
      const replacement: ChildProcess = spawnProcess('worker', env, { stdio: 'ignore' });
      workers[i] = replacement;
      stack.children.push(replacement);
    }, killEveryMs);

    const runIds: string[] = [];
    for (let i = 0; i < RUNS; i += 1) {
      const res = await call<{ id: string }>('POST', '/v1/runs', JSON.stringify({ definition: 'chaos-run', input: { n: i, receiver: receiverUrl } }));
      if (res.status !== 202) throw new StackError(`POST /v1/runs answered ${res.status}`);
      runIds.push(res.body.id);
    }
    log(`started ${RUNS} runs; killing a worker every ${killEveryMs} ms`);

    const terminal = async () => {
      const rows = await sql<{ status: string; n: number }[]>`select status, count(*)::int as n from runs where id = any(${runIds}::uuid[]) group by status`;
      return Object.fromEntries(rows.map((r) => [r.status, r.n])) as Record<string, number>;
    };
    let wiped = false;
    let reconcileReport = '';
    const deadline = Date.now() + 15 * 60_000;
    for (;;) {
      const counts = await terminal();
      const done = (counts.completed ?? 0) + (counts.failed ?? 0) + (counts.cancelled ?? 0);
      if (!wiped && done >= RUNS / 2) {
        wiped = true;
        const redis = new Redis(env.REDIS_URL ?? '');
        let cursor = '0';
        let deleted = 0;
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length > 0) deleted += await redis.del(...keys);
        } while (cursor !== '0');
        redis.disconnect();
        log(`halfway (${done}/${RUNS} finished): deleted all ${deleted} Redis keys of "${prefix}"; running the reconciler`);
        const reconcile = spawn(process.execPath, [join(projectRoot(), 'dist', 'scripts', 'reconcile.js')], {
          env: { PATH: process.env.PATH ?? '', ...env },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        reconcile.stdout?.on('data', (c: Buffer) => (out += c.toString()));
        const { code } = await exited(reconcile);
        if (code !== 0) throw new StackError(`reconcile exited with ${code}`);
        reconcileReport = out.trim();
        log(`reconciler: ${reconcileReport}`);
      }
      if (done >= RUNS) break;
      if (Date.now() > deadline) throw new StackError(`only ${done}/${RUNS} runs finished within 15 min: ${JSON.stringify(counts)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    clearInterval(killer);
    killer = undefined;

    // Figures, from Postgres and the receiver.
    const counts = await terminal();
    const [twice] = await sql<{ n: number }[]>`
      select count(*)::int as n from (
        select run_id, step_id, generation from step_attempts where status = 'completed'
        group by run_id, step_id, generation having count(*) > 1) t`;
    const [events] = await sql<{ runs: number; bad: number }[]>`
      select count(*)::int as runs, count(*) filter (where n <> 12)::int as bad from (
        select r.id, count(e.*) as n from runs r
        left join run_events e on e.run_id = r.id and e.type = 'step.completed'
        where r.id = any(${runIds}::uuid[]) group by r.id) t`;
    const [children] = await sql<{ total: number; completed: number }[]>`
      select count(*)::int as total, count(*) filter (where status = 'completed')::int as completed
      from runs where parent_run_id = any(${runIds}::uuid[])`;
    const [lost] = await sql<{ n: number }[]>`select count(*)::int as n from step_attempts where status = 'lost' and run_id = any(${runIds}::uuid[])`;
    const effectRuns = runIds.filter((id) => effects.has(id)).length;
    const badKeys = runIds.filter((id) => {
      const keys = effects.get(id);
      return !keys || keys.size !== 1 || !keys.has(`${id}.effect.1`);
    }).length;
    const [okOutputs] = await sql<{ n: number }[]>`select count(*)::int as n from runs where id = any(${runIds}::uuid[]) and output->>'ok' = 'true'`;

    const producer = createRedis(env.REDIS_URL ?? '', 'producer');
    const queues = new Queues(producer, prefix, silentLogger());
    let stuck = { active: 0, waitingChildren: 0 };
    for (let tries = 0; tries < 20; tries += 1) {
      stuck = { active: 0, waitingChildren: 0 };
      for (const name of QUEUE_NAMES) {
        const c = await queues.get(name).getJobCounts('active', 'waiting-children');
        // The periodic reconcile job may be active for a moment: not a step.
        stuck.active += name === 'runs' ? Math.max(0, (c.active ?? 0) - 1) : (c.active ?? 0);
        stuck.waitingChildren += c['waiting-children'] ?? 0;
      }
      if (stuck.active === 0 && stuck.waitingChildren === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    await queues.close();
    producer.disconnect();

    const figures = {
      settings,
      runs: RUNS,
      completed: counts.completed ?? 0,
      failed: counts.failed ?? 0,
      outputsOk: okOutputs?.n ?? 0,
      childRuns: `${children?.completed ?? 0}/${children?.total ?? 0} completed`,
      workersKilled: kills,
      attemptsLostToKills: lost?.n ?? 0,
      stepsRecordedCompletedTwice: twice?.n ?? 0,
      runsWithout12StepCompletions: events?.bad ?? 0,
      effectCalls,
      runsWithEffect: effectRuns,
      runsWithOtherThanOneIdempotencyKey: badKeys,
      jobsLeftActive: stuck.active,
      jobsLeftWaitingChildren: stuck.waitingChildren,
      wallSeconds: Number(((Date.now() - startedAt) / 1000).toFixed(1)),
    };
    log(`figures: ${JSON.stringify(figures, null, 2)}`);
    failures = [
      figures.completed !== RUNS ? `${RUNS - figures.completed} runs did not complete` : '',
      figures.outputsOk !== RUNS ? `${RUNS - figures.outputsOk} runs have a wrong output` : '',
      figures.stepsRecordedCompletedTwice > 0 ? `${figures.stepsRecordedCompletedTwice} steps recorded completed twice` : '',
      figures.runsWithout12StepCompletions > 0 ? `${figures.runsWithout12StepCompletions} runs without exactly 12 step completions` : '',
      effectRuns !== RUNS ? `${RUNS - effectRuns} runs without their effect` : '',
      badKeys > 0 ? `${badKeys} runs whose effect arrived under another or more than one key` : '',
      stuck.active + stuck.waitingChildren > 0 ? `jobs left behind: ${JSON.stringify(stuck)}` : '',
    ].filter(Boolean);
  } finally {
    if (killer) clearInterval(killer);
    await stack.stop();
    receiver.closeAllConnections();
    await new Promise<void>((r) => receiver.close(() => r()));
    await sql.end({ timeout: 2 });
  }
  if (failures.length > 0) {
    throw new StackError(`chaos found shortfalls (kept for inspection: database ${databaseUrl.pathname.slice(1)}, prefix ${prefix}):\n- ${failures.join('\n- ')}`);
  }
  log('chaos passed: no run lost, stuck or duplicated');
  // Passed: drop this run's database and queue keys.
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const adminSql = postgres(admin.toString(), { max: 1, onnotice: () => undefined });
  await adminSql.unsafe(`drop database if exists "${databaseUrl.pathname.slice(1)}" with (force)`).finally(() => adminSql.end({ timeout: 2 }));
  const redis = new Redis(env.REDIS_URL ?? '');
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
  redis.disconnect();
}

runEntry(process, 'chaos failed', main, { exitOnSuccess: true });
