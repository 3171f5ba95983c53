/**
 * `npm run bench -- --only kpi [--runs N --approvers C]`: the KPI-tracking phase of the bench.
 * The real architecture (release, 1 web and 2 workers from the Procfile) on N (default 200) KPI
 * runs, in two phases:
 * 1. start all runs and wait until every one is parked at its checkpoint;
 * 2. approve them through the API, C (default 10) at a time, and wait until all complete.
 * Uses the queue prefix `<QUEUE_PREFIX>-bench` and the database `<db>_bench`, removed at the end.
 *
 * Reported from the runs' own events (Postgres time):
 * - step-to-step latency: start of a step − completion of the last step it needs;
 * - approval-to-next-step latency: completion of the checkpoint step − its `checkpoint.resolved`;
 * - `POST /v1/runs` latency as the client saw it, and runs completed per second.
 */
import type { Config } from '../lib/index.js';
import { benchTargets, removeBenchData } from './bench-isolation.js';
import { StackError, checkServices, stackEnvironment, startLocalStack } from './local-stack.js';

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

/**
 * Run the KPI phase and print its lines.
 * @param runs - `--runs` as given; @param approvers - `--approvers` as given.
 * @throws {StackError} on a bad flag, a missing service, or runs that do not finish within 10 min.
 */
export async function benchKpiRuns(config: Config, runs: string, approvers: string, log: (line: string) => void): Promise<void> {
  const values = { runs, approvers };
  const RUNS = Number(values.runs);
  if (!Number.isInteger(RUNS) || RUNS < 1) throw new StackError(`--runs: expected a positive integer, got "${values.runs}"`);
  const APPROVERS = Number(values.approvers);
  if (!Number.isInteger(APPROVERS) || APPROVERS < 1) throw new StackError(`--approvers: expected a positive integer, got "${values.approvers}"`);
  const targets = benchTargets(config);
  await removeBenchData(targets);
  const env = await stackEnvironment(config, { QUEUE_PREFIX: targets.prefix, DATABASE_URL: targets.databaseUrl, LOG_LEVEL: 'error', RATE_LIMIT_RUNS_PER_MINUTE: '0' });
  await checkServices(env);
  const stack = await startLocalStack(env, 2, log);
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
    await removeBenchData(targets);
  }
}

