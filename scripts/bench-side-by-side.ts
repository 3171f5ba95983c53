/**
 * The default phase of `npm run bench`: Baton and raw BullMQ side by side, in one invocation,
 * against the same Redis and Postgres, printed as the markdown table of issue 8 with its goals.
 *
 * Baton: release, 1 web and 2 workers from the Procfile's own lines, on its own database
 * (`<db>_bench`) and queue prefix (`<QUEUE_PREFIX>-bench`), measured as a black box (HTTP API,
 * `runs`/`run_events` rows, Redis keys of its prefix, process ids). Raw BullMQ: 2 worker processes
 * at Baton's `WORKER_CONCURRENCY` and an endpoint that only adds a flow
 * (`scripts/bench-raw-worker.ts`), on the prefix `<QUEUE_PREFIX>-bench-raw`. Both are removed at
 * the end.
 *
 * Phases, in order:
 * 1. statement count: a separate short pass (`--count-runs` runs) with
 *    `ALTER DATABASE … SET log_statement = 'all'`, counted in the server log per backend;
 * 2. hop latency of one run alone (`--hop-runs` runs of a `--steps` chain, one after the other)
 *    against a raw chain (`completed` event → `add` of the next job);
 * 3. approval → next step started (`--approval-runs` runs of `--pairs` checkpoint → step pairs,
 *    decided through the API) against `promote()` of a delayed job → its `processedOn`;
 * 4. throughput: `--runs` runs × `--steps` steps in flight against as many flows of as many
 *    children, each side measured on its second round of that load (the first, untimed, warms
 *    the processes: JIT, prepared statements, caches; its rate is printed too); CPU (`/proc/<pid>/stat`) of the processes and Postgres backends, and Redis bytes
 *    (`MEMORY USAGE` over the prefix) before and after;
 * 5. `POST /v1/runs` with autocannon (`--connections`, `--duration` s, unique `Idempotency-Key`s)
 *    against the raw endpoint, both with their workers stopped (the API alone).
 */
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import postgres, { type Sql } from 'postgres';
import type { Config } from '../lib/index.js';
import { spawnProcess, exited } from './procfile.js';
import { checkServices, stackEnvironment, startLocalStack, type LocalStack } from './local-stack.js';
import {
  BatonClient,
  batonApprovals,
  batonHops,
  batonThroughput,
  noopSlug,
  waitForRuns,
  type Shape,
  type StepKind,
} from './bench-baton.js';
import {
  backendPids,
  countStatements,
  cpuDeltaMs,
  cpuSnapshot,
  fileSize,
  loadAverages,
  loadLine,
  memoryGrowth,
  percentile,
  prefixMemory,
  readFrom,
  serverLogFile,
  sleep,
  type StatementCounts,
} from './bench-measure.js';
import { benchTargets, removeBenchData } from './bench-isolation.js';
import { RawBullmq } from './bench-raw.js';

/** Sizes and choices of one side-by-side invocation (`npm run bench -- --flag value`). */
export interface SideBySideOptions {
  /** Runs (and raw flows) in flight in the throughput phase (`--runs`, default 200). */
  runs: number;
  /** Steps per run (and children per raw flow) (`--steps`, default 20). */
  steps: number;
  /** Seconds of each autocannon measurement (`--duration`, default 5). */
  durationS: number;
  /** autocannon connections (`--connections`, default 20). */
  connections: number;
  /** Chain runs measured one at a time for hops (`--hop-runs`, default 5). */
  hopRuns: number;
  /** Runs of the approval definition, one at a time (`--approval-runs`, default 5). */
  approvalRuns: number;
  /** Checkpoint → step pairs per approval run (`--pairs`, default 10). */
  pairs: number;
  /** Runs of the statement-count pass (`--count-runs`, default 20). */
  countRuns: number;
  /** The no-op step kind (`--step-kind context|function`, default context). */
  stepKind: StepKind;
  /** Shape of the throughput definition (`--shape chain|wide`, default chain). */
  shape: Shape;
  /** `DATABASE_POOL_MAX` of Baton's processes (`--pool-max`, default 10: 3 processes share a 100-connection Postgres). */
  poolMax: number;
  /** Pause before a decision or promote, and after it, in ms, so the job has parked (`--settle-ms`, default 50). */
  settleMs: number;
}

/** Concurrency of the run/flow submissions in the throughput phase. */
const SUBMIT_CONCURRENCY = 20;
/** Wait after the statement-count pass so every backend has flushed its statistics (PGSTAT_IDLE_INTERVAL is 10 s). */
const STATS_FLUSH_MS = 11_000;
/** Wait after the last run finished before reading Redis or the log (root jobs finish after the runs' last commit). */
const REDIS_SETTLE_MS = 1_000;
/** Longest the throughput phase may take. */
const THROUGHPUT_TIMEOUT_MS = 240_000;

/** Baton's worker processes, started from the Procfile's `worker` line. */
function startWorkers(env: Record<string, string>, count: number): ChildProcess[] {
  return Array.from({ length: count }, () => spawnProcess('worker', env, { stdio: 'inherit' }));
}

async function stopProcesses(children: readonly ChildProcess[]): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => Promise.race([exited(c), sleep(10_000)])));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** A started Baton: web (with release run first) and workers. */
interface Baton {
  stack: LocalStack;
  workers: ChildProcess[];
  client: BatonClient;
}

async function startBaton(env: Record<string, string>, log: (line: string) => void): Promise<Baton> {
  const stack = await startLocalStack(env, 0, log);
  const workers = startWorkers(env, 2);
  log('started 2 workers from the Procfile');
  return { stack, workers, client: new BatonClient(stack.baseUrl, env.BATON_API_KEY ?? '') };
}

async function stopBaton(baton: Baton | undefined): Promise<void> {
  if (!baton) return;
  await stopProcesses(baton.workers);
  await baton.stack.stop();
}

/** Formatting of the table's cells. */
const int = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const ms = (n: number): string => (!Number.isFinite(n) ? 'n/a' : n >= 10 ? n.toFixed(0) : n.toFixed(1));
const ratio = (baton: number, raw: number, asPercent = false): string => {
  if (!Number.isFinite(baton) || !Number.isFinite(raw)) return 'n/a';
  if (raw === 0) return 'n/a (raw 0 at 1-ms resolution)';
  return asPercent ? `${((baton / raw) * 100).toFixed(1)} %` : `× ${(baton / raw).toFixed(1)}`;
};
const p50p99 = (values: readonly number[]): string => `${ms(percentile(values, 50))} / ${ms(percentile(values, 99))} ms`;

/** One autocannon measurement of `POST /v1/runs`: a 1-s untimed warm-up, then `durationS`. */
async function postRate(url: string, headers: Record<string, string>, body: string, connections: number, durationS: number): Promise<autocannon.Result> {
  const options = {
    url,
    method: 'POST' as const,
    headers: { ...headers, 'idempotency-key': `bench-[<id>]` },
    body,
    idReplacement: true,
    connections,
  };
  await autocannon({ ...options, duration: 1 });
  return autocannon({ ...options, duration: durationS });
}

/** The statement-count pass, on a stack started with `log_statement = 'all'` for the bench database. */
async function countPass(
  env: Record<string, string>,
  admin: Sql,
  database: string,
  options: SideBySideOptions,
  log: (line: string) => void,
): Promise<{ counts: StatementCounts; steps: number; walSyncs: number; logFile: string } | { skipped: string }> {
  const logFile = await serverLogFile(admin);
  if (!logFile) return { skipped: 'server log not readable' };
  await admin.unsafe(`create database "${database}"`);
  await admin.unsafe(`alter database "${database}" set log_statement = 'all'`);
  let baton: Baton | undefined;
  const monitor = postgres(env.DATABASE_URL ?? '', { max: 1, onnotice: () => undefined });
  try {
    baton = await startBaton(env, log);
    await baton.client.ensureDefinitions(options.stepKind, options.shape, options.steps, options.pairs);
    const slug = noopSlug(options.shape);
    const warmup = await baton.client.startRun(slug);
    await waitForRuns(monitor, [warmup], 60_000);
    const [self] = await monitor<Array<{ pid: number }>>`select pg_backend_pid() as pid`;
    const [wal0] = await admin<Array<{ n: string }>>`select wal_sync::text as n from pg_stat_wal`;
    const offset = await fileSize(logFile);
    const client = baton.client;
    const runIds = await Promise.all(Array.from({ length: options.countRuns }, () => client.startRun(slug)));
    await waitForRuns(monitor, runIds, 120_000);
    await sleep(REDIS_SETTLE_MS); // what the runs' last jobs do after their final commit
    const end = await fileSize(logFile);
    const [steps] = await monitor<Array<{ n: number }>>`select count(*)::int as n from run_events where run_id = any(${runIds}::uuid[]) and type = 'step.completed'`;
    await stopBaton(baton);
    baton = undefined;
    await sleep(STATS_FLUSH_MS);
    const [wal1] = await admin<Array<{ n: string }>>`select wal_sync::text as n from pg_stat_wal`;
    const text = await readFrom(logFile, offset, end);
    const counts = countStatements(text, database, self ? [self.pid] : []);
    return { counts, steps: steps?.n ?? 0, walSyncs: Number(wal1?.n ?? NaN) - Number(wal0?.n ?? NaN), logFile };
  } finally {
    await stopBaton(baton);
    await monitor.end({ timeout: 2 });
    await admin.unsafe(`alter database "${database}" reset log_statement`);
  }
}

/**
 * Run the side-by-side bench and print its table and details.
 * @throws {StackError} when a service is missing, Baton does not start, or a run does not complete.
 */
export async function benchSideBySide(config: Config, options: SideBySideOptions, log: (line: string) => void): Promise<void> {
  const loadBefore = loadLine();
  const averagesBefore = loadAverages();
  const targets = benchTargets(config);
  const { prefix, rawPrefix, database } = targets;
  const env = await stackEnvironment(config, {
    QUEUE_PREFIX: prefix,
    DATABASE_URL: targets.databaseUrl,
    DATABASE_POOL_MAX: String(options.poolMax),
    WORKER_CONCURRENCY: String(config.worker.concurrency),
    LOG_LEVEL: 'error',
    RATE_LIMIT_RUNS_PER_MINUTE: '0', // the bench measures the engine, not the run-start limit
    // No LLM endpoint: `type: context` steps use the deterministic local provider.
    LLM_BASE_URL: '',
    BATON_API_KEY: `bench_${randomBytes(16).toString('hex')}`,
  });
  await checkServices(env);
  log(`== Baton vs raw BullMQ, side by side (${options.runs} runs × ${options.steps} ${options.stepKind} steps, ${options.shape})`);
  log(`database ${database}, queue prefixes ${prefix} and ${rawPrefix}; worker concurrency ${config.worker.concurrency}, Baton pool max ${options.poolMax}`);
  log(`before: ${loadBefore}`);

  const admin = postgres(targets.adminUrl, { max: 1, onnotice: () => undefined });
  const redis = new Redis(config.redis.url, { maxRetriesPerRequest: null, connectionName: 'bench' });
  let baton: Baton | undefined;
  let raw: RawBullmq | undefined;
  // One connection, so that `backendPids` (which leaves out the caller's own backend) counts none of the bench's.
  const monitor = postgres(targets.databaseUrl, { max: 1, onnotice: () => undefined });
  try {
    await removeBenchData(targets);

    log('\n-- 1. statement count (separate pass, log_statement = all)');
    const counted = await countPass(env, admin, database, options, log);
    if ('skipped' in counted) log(`skipped: ${counted.skipped}`);
    else log(`${counted.counts.statements} statements, ${counted.counts.transactions} transactions, ${counted.counts.durableCommits} durable commits for ${counted.steps} steps (log ${counted.logFile}); cluster-wide wal_sync +${counted.walSyncs}`);

    log('\n-- 2–5. timed phases (log_statement reset; fresh processes)');
    baton = await startBaton(env, log);
    await baton.client.ensureDefinitions(options.stepKind, options.shape, options.steps, options.pairs);
    raw = await RawBullmq.start(redis, config.redis.url, rawPrefix, 2, config.worker.concurrency);
    log(`raw BullMQ: 2 worker processes (concurrency ${config.worker.concurrency}) + endpoint ${raw.baseUrl}`);

    const batonChain = await batonHops(baton.client, monitor, options.hopRuns, options.steps);
    const rawChain = await raw.hops(options.hopRuns, options.steps);
    const [batonHop, rawHop] = [batonChain.hops, rawChain.hops];
    log(`hops: Baton ${p50p99(batonChain.hops)} (n=${batonChain.hops.length}, max ${ms(Math.max(...batonChain.hops))}); raw ${p50p99(rawChain.hops)} (n=${rawChain.hops.length}, max ${ms(Math.max(...rawChain.hops))})`);
    log(`chain cycle (step done → successor done): Baton ${p50p99(batonChain.cycles)}; raw ${p50p99(rawChain.cycles)}`);

    const batonDecisions = await batonApprovals(baton.client, monitor, options.approvalRuns, options.pairs, options.settleMs);
    const rawPromotions = await raw.promotions(options.approvalRuns * options.pairs, options.settleMs);
    const [batonApproval, rawPromote] = [batonDecisions.started, rawPromotions.started];
    log(`approval → next step started: Baton ${p50p99(batonApproval)} (n=${batonApproval.length}); raw promote → processing ${p50p99(rawPromote)} (n=${rawPromote.length})`);
    log(`approval → next step done: Baton ${p50p99(batonDecisions.done)}; raw promote → finished ${p50p99(rawPromotions.done)}`);

    // Throughput, with CPU and Redis before/after, after one untimed round of the same load on
    // each side: a long-running service is measured warm (JIT, prepared statements, caches).
    const batonCold = await batonThroughput(baton.client, monitor, noopSlug(options.shape), options.runs, SUBMIT_CONCURRENCY, THROUGHPUT_TIMEOUT_MS);
    const rawCold = await raw.throughput(options.runs, options.steps, SUBMIT_CONCURRENCY, THROUGHPUT_TIMEOUT_MS);
    log(`throughput warm-up (untimed, fresh processes): Baton ${int((batonCold.steps / batonCold.wallMs) * 1000)} steps/s; raw ${int((rawCold.children / rawCold.wallMs) * 1000)} flow children/s`);
    await sleep(REDIS_SETTLE_MS);
    const batonPids = [baton.stack.children[0]?.pid ?? 0, ...baton.workers.map((w) => w.pid ?? 0)];
    const pgBefore = await cpuSnapshot(await backendPids(monitor, database));
    const batonCpuBefore = await cpuSnapshot(batonPids);
    const batonRedisBefore = await prefixMemory(redis, prefix);
    const thr = await batonThroughput(baton.client, monitor, noopSlug(options.shape), options.runs, SUBMIT_CONCURRENCY, THROUGHPUT_TIMEOUT_MS);
    await sleep(REDIS_SETTLE_MS);
    const batonCpu = cpuDeltaMs(batonCpuBefore, await cpuSnapshot(batonPids));
    const pgCpu = cpuDeltaMs(pgBefore, await cpuSnapshot([...new Set([...pgBefore.keys(), ...(await backendPids(monitor, database))])]));
    const batonRedis = await prefixMemory(redis, prefix);
    const batonRate = (thr.steps / thr.wallMs) * 1000;
    log(`throughput: Baton ${thr.steps} steps in ${(thr.wallMs / 1000).toFixed(2)} s; CPU web+workers ${int(batonCpu)} ms, Postgres backends ${int(pgCpu)} ms; Redis ${int(batonRedisBefore.bytes)} → ${int(batonRedis.bytes)} B (${batonRedisBefore.keys} → ${batonRedis.keys} keys); per step: ${memoryGrowth(batonRedisBefore, batonRedis, thr.steps)}`);

    const rawCpuBefore = await cpuSnapshot(raw.pids());
    const rawRedisBefore = await prefixMemory(redis, rawPrefix);
    const rawThr = await raw.throughput(options.runs, options.steps, SUBMIT_CONCURRENCY, THROUGHPUT_TIMEOUT_MS);
    await sleep(REDIS_SETTLE_MS);
    const rawCpu = cpuDeltaMs(rawCpuBefore, await cpuSnapshot(raw.pids()));
    const rawRedis = await prefixMemory(redis, rawPrefix);
    const rawRate = (rawThr.children / rawThr.wallMs) * 1000;
    log(`throughput: raw ${rawThr.children} flow children in ${(rawThr.wallMs / 1000).toFixed(2)} s; CPU workers+endpoint ${int(rawCpu)} ms; Redis ${int(rawRedisBefore.bytes)} → ${int(rawRedis.bytes)} B (${rawRedisBefore.keys} → ${rawRedis.keys} keys); per child: ${memoryGrowth(rawRedisBefore, rawRedis, rawThr.children)}`);

    // POST /v1/runs, each side with its workers stopped: the API alone.
    await stopProcesses(baton.workers);
    await raw.stopWorkers();
    const body = JSON.stringify({ definition: noopSlug(options.shape), input: {} });
    const batonPost = await postRate(`${baton.stack.baseUrl}/v1/runs`, baton.client.headers(), body, options.connections, options.durationS);
    const initiallyReady = options.shape === 'chain' ? 1 : options.steps;
    const rawPost = await postRate(`${raw.baseUrl}/v1/runs?children=${initiallyReady}`, { 'content-type': 'application/json' }, body, options.connections, options.durationS);
    const describePost = (r: autocannon.Result) =>
      `${int(r.requests.average)} req/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, ${r['2xx']} 2xx, ${r.non2xx} non-2xx, ${r.errors} errors`;
    log(`POST /v1/runs (${options.connections} connections, ${options.durationS} s): Baton ${describePost(batonPost)}; raw ${describePost(rawPost)}`);
    const loadAfter = loadLine();
    const averagesAfter = loadAverages();

    const perStep = (n: number, steps: number) => (steps > 0 ? n / steps : NaN);
    const sqlCell =
      'skipped' in counted
        ? `n/a (${counted.skipped})`
        : `${perStep(counted.counts.transactions, counted.steps).toFixed(1)} · ${perStep(counted.counts.statements, counted.steps).toFixed(1)} · ` +
          `${perStep(counted.counts.durableCommits, counted.steps).toFixed(1)} (cluster-wide wal_sync Δ ${perStep(counted.walSyncs, counted.steps).toFixed(1)})`;
    const batonBytes = perStep(batonRedis.bytes - batonRedisBefore.bytes, thr.steps);
    const rawBytes = perStep(rawRedis.bytes - rawRedisBefore.bytes, rawThr.children);
    const batonCpuStep = perStep(batonCpu, thr.steps);
    const pgCpuStep = perStep(pgCpu, thr.steps);
    const rawCpuStep = perStep(rawCpu, rawThr.children);
    const postCell = (r: autocannon.Result) => {
      const failed = r.non2xx + r.errors;
      return `${int(r.requests.average)} req/s, p99 ${r.latency.p99} ms${failed > 0 ? ` (${failed} failed)` : ''}`;
    };
    const rows: string[][] = [
      ['figure', 'Baton', 'raw BullMQ', 'Baton ÷ raw', 'goal (issue 8)'],
      [
        `no-op steps/s, ${options.runs} runs × ${options.steps} steps in flight`,
        `${int(batonRate)} steps/s`,
        `${int(rawRate)} flow children/s`,
        ratio(batonRate, rawRate, true),
        '≥ 50 % of raw',
      ],
      ['hop (step done → successor started), one run alone, p50 / p99', p50p99(batonHop), p50p99(rawHop), `${ratio(percentile(batonHop, 50), percentile(rawHop, 50))} / ${ratio(percentile(batonHop, 99), percentile(rawHop, 99))}`, '≤ 3 / 10 ms'],
      ['approval → next step started, p50 / p99', p50p99(batonApproval), `${p50p99(rawPromote)} (promote)`, `${ratio(percentile(batonApproval, 50), percentile(rawPromote, 50))} / ${ratio(percentile(batonApproval, 99), percentile(rawPromote, 99))}`, 'p50 ≤ 10 ms'],
      [`\`POST /v1/runs\` (${options.connections} connections, ${options.durationS} s)`, postCell(batonPost), `${postCell(rawPost)} (adds a flow)`, ratio(batonPost.requests.average, rawPost.requests.average, true), '≥ 1,000 req/s at p99 ≤ 50 ms'],
      ['Redis per finished step, runs ended', `${int(batonBytes)} B`, `${int(rawBytes)} B per kept child job`, ratio(batonBytes, rawBytes), '≤ 1 KB'],
      ['CPU per step', `web + workers ${batonCpuStep.toFixed(2)} ms + Postgres ${pgCpuStep.toFixed(2)} ms`, `${rawCpuStep.toFixed(2)} ms (workers + endpoint)`, ratio(batonCpuStep + pgCpuStep, rawCpuStep), '—'],
      ['SQL per step: transactions · statements · durable commits (fsyncs)', sqlCell, '—', '—', '≤ 8 statements, ≤ 1 fsync'],
      ['load average (1 / 5 / 15 min), before → after', `${averagesBefore} → ${averagesAfter}`, 'same machine, same invocation', '', '2 cores, shared'],
    ];
    log(`after: ${loadAfter}\n`);
    log(rows.map((r, i) => `| ${r.join(' | ')} |${i === 0 ? `\n|${r.map(() => '---').join('|')}|` : ''}`).join('\n'));
    log(`\n${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; ${options.stepKind} steps (${options.shape}); Baton ${baton.workers.length} workers, pool max ${options.poolMax}.`);
  } finally {
    await stopBaton(baton);
    await raw?.stop();
    await monitor.end({ timeout: 2 });
    await removeBenchData(targets).catch((err: unknown) => log(`cleanup failed: ${err instanceof Error ? err.message : String(err)}`));
    await admin.end({ timeout: 2 });
    redis.disconnect();
  }
}
