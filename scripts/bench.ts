/**
 * `npm run bench [-- --runs N --approvers C --calls M --only kpi|function]`: throughput and latency
 * of the real architecture (release, 1 web and 2 workers from the Procfile) on N (default 200) KPI
 * runs, in two phases:
 * 1. start all runs and wait until every one is parked at its checkpoint;
 * 2. approve them through the API, C (default 10) at a time, and wait until all complete.
 * Uses the queue prefix `<QUEUE_PREFIX>-bench`.
 *
 * Reported from the runs' own events (Postgres time):
 * - step-to-step latency: start of a step − completion of the last step it needs;
 * - approval-to-next-step latency: completion of the checkpoint step − its `checkpoint.resolved`;
 * - `POST /v1/runs` latency as the client saw it, and runs completed per second.
 *
 * Then a separate phase, `function steps` (`scripts/bench-function.ts`, no services needed): the
 * overhead per call of the worker-thread function runtime (M calls, default 2000, of a trivial
 * `main`) against the same function in-process. `--only kpi` / `--only function` runs one phase.
 */
import { parseArgs } from 'node:util';
import { loadConfig, runEntry, type ShutdownRegistry } from '../lib/index.js';
import { benchFunctionRuntime } from './bench-function.js';
import { StackError, checkServices, stackEnvironment, startLocalStack, stopOnSignal } from './local-stack.js';

const POST_CONCURRENCY = 20;

interface EventView {
  seq: number;
  type: string;
  stepId: string | null;
  createdAt: string;
}

function percentiles(values: number[]): string {
  if (values.length === 0) return 'n/a';
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
  return `p50 ${at(50)} ms · p95 ${at(95)} ms · p99 ${at(99)} ms · max ${sorted.at(-1)} ms (n=${sorted.length})`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '200' },
      approvers: { type: 'string', default: '10' },
      calls: { type: 'string', default: '2000' },
      only: { type: 'string' },
    },
  });
  if (values.only !== undefined && !['kpi', 'function'].includes(values.only)) {
    throw new StackError(`--only: expected kpi or function, got "${values.only}"`);
  }
  const CALLS = Number(values.calls);
  if (!Number.isInteger(CALLS) || CALLS < 1) throw new StackError(`--calls: expected a positive integer, got "${values.calls}"`);
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const shutdown = stopOnSignal(process, 'bench', loadConfig());
  if (values.only !== 'function') await benchKpiRuns(values.runs, values.approvers, log, shutdown);
  if (values.only !== 'kpi') await benchFunctionRuntime(loadConfig(), CALLS, log);
}

/** The KPI-run phases (the real stack). */
async function benchKpiRuns(runs: string, approvers: string, log: (line: string) => void, shutdown: ShutdownRegistry): Promise<void> {
  const values = { runs, approvers };
  const RUNS = Number(values.runs);
  if (!Number.isInteger(RUNS) || RUNS < 1) throw new StackError(`--runs: expected a positive integer, got "${values.runs}"`);
  const APPROVERS = Number(values.approvers);
  if (!Number.isInteger(APPROVERS) || APPROVERS < 1) throw new StackError(`--approvers: expected a positive integer, got "${values.approvers}"`);
  const config = loadConfig();
  const env = await stackEnvironment(config, { QUEUE_PREFIX: `${config.redis.prefix}-bench`, LOG_LEVEL: 'error' });
  await checkServices(env);
  const stack = await startLocalStack(env, 2, log);
  shutdown.register('local stack', () => stack.stop());
  const headers = { authorization: `Bearer ${env.BATON_API_KEY}`, 'content-type': 'application/json' };
  const call = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${stack.baseUrl}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: res.status, body: (await res.json()) as T };
  };

  try {
    const symbols = [['AAPL', 'MSFT'], ['GOOG', 'AMZN'], ['IBM'], ['AAPL', 'IBM', 'MSFT']];
    const postLatency: number[] = [];
    const runIds: string[] = [];
    const startedAt = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: POST_CONCURRENCY }, async () => {
        while (next < RUNS) {
          const i = next++;
          const t0 = performance.now();
          const res = await call<{ id: string }>('POST', '/v1/runs', {
            definition: 'kpi-tracking',
            input: { symbols: symbols[i % symbols.length], from: '2004-01-01', to: '2009-12-31' },
          });
          postLatency.push(Math.round(performance.now() - t0));
          if (res.status !== 202) throw new StackError(`POST /v1/runs answered ${res.status}`);
          runIds.push(res.body.id);
        }
      }),
    );
    log(`started ${RUNS} runs in ${Date.now() - startedAt} ms`);

    // Phase 1: wait until every run is parked at its checkpoint.
    const mine = new Set(runIds);
    const deadline = Date.now() + 10 * 60_000;
    let parked: Array<{ id: string; runId: string }> = [];
    while (parked.length < RUNS) {
      if (Date.now() > deadline) throw new StackError(`only ${parked.length}/${RUNS} runs reached the checkpoint within 10 min`);
      const seen: Array<{ id: string; runId: string }> = [];
      let cursor: string | null = null;
      do {
        const page: { body: { items: Array<{ id: string; runId: string }>; nextCursor: string | null } } = await call(
          'GET',
          `/v1/approvals?status=pending&limit=200${cursor ? `&cursor=${cursor}` : ''}`,
        );
        seen.push(...page.body.items.filter((a) => mine.has(a.runId)));
        cursor = page.body.nextCursor;
      } while (cursor);
      parked = seen;
      if (parked.length < RUNS) await new Promise((r) => setTimeout(r, 100));
    }
    const parkedMs = Date.now() - startedAt;
    log(`all ${RUNS} runs parked at their checkpoint after ${parkedMs} ms`);

    // Phase 2: approve, APPROVERS at a time.
    const approveStartedAt = Date.now();
    const decisionLatency: number[] = [];
    let nextApproval = 0;
    await Promise.all(
      Array.from({ length: APPROVERS }, async () => {
        while (nextApproval < parked.length) {
          const approval = parked[nextApproval++]!;
          const t0 = performance.now();
          const res = await call('POST', `/v1/approvals/${approval.id}/decision`, { decision: 'continue' });
          decisionLatency.push(Math.round(performance.now() - t0));
          if (res.status !== 200) throw new StackError(`decision answered ${res.status}`);
        }
      }),
    );
    const finished = new Map<string, string>();
    while (finished.size < RUNS) {
      if (Date.now() > deadline) throw new StackError(`only ${finished.size}/${RUNS} runs finished within 10 min`);
      for (const id of runIds.filter((r) => !finished.has(r)).slice(0, 50)) {
        const run = await call<{ status: string }>('GET', `/v1/runs/${id}`);
        if (['completed', 'failed', 'cancelled'].includes(run.body.status)) finished.set(id, run.body.status);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    const approvePhaseMs = Date.now() - approveStartedAt;
    const wallMs = Date.now() - startedAt;

    const stepToStep: number[] = [];
    const approvalToNext: number[] = [];
    for (const id of runIds) {
      const { body } = await call<{ items: EventView[] }>('GET', `/v1/runs/${id}/events`);
      const { body: run } = await call<{ steps: Array<{ id: string; needs: string[] }> }>('GET', `/v1/runs/${id}`);
      const at = (type: string, stepId: string) => {
        const e = body.items.find((x) => x.type === type && x.stepId === stepId);
        return e ? Date.parse(e.createdAt) : undefined;
      };
      for (const step of run.steps) {
        const started = at('step.started', step.id);
        const ready = step.needs.map((n) => at('step.completed', n));
        if (started === undefined || ready.length === 0 || ready.some((t) => t === undefined)) continue;
        stepToStep.push(started - Math.max(...(ready as number[])));
      }
      const resolved = body.items.find((e) => e.type === 'checkpoint.resolved');
      const reviewDone = at('step.completed', 'review');
      if (resolved && reviewDone !== undefined) approvalToNext.push(reviewDone - Date.parse(resolved.createdAt));
    }
    const outcomes = [...finished.values()].reduce<Record<string, number>>((acc, s) => ({ ...acc, [s]: (acc[s] ?? 0) + 1 }), {});
    log(`\n${RUNS} KPI runs (4 steps + 1 checkpoint each), 1 web + 2 workers, 2 cores`);
    log(`outcomes: ${JSON.stringify(outcomes)}`);
    log(`wall time: ${(wallMs / 1000).toFixed(2)} s; start → all parked ${(parkedMs / 1000).toFixed(2)} s; approve → all completed ${(approvePhaseMs / 1000).toFixed(2)} s (${APPROVERS} approvers at a time)`);
    log(`POST /v1/runs:            ${percentiles(postLatency)}`);
    log(`POST decision:            ${percentiles(decisionLatency)}`);
    log(`step-to-step latency:     ${percentiles(stepToStep)}`);
    log(`approval → next step:     ${percentiles(approvalToNext)}`);
  } finally {
    await stack.stop();
  }
}

runEntry(process, 'bench failed', main, { exitOnSuccess: true });
