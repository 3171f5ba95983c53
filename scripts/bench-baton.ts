/**
 * The Baton side of the side-by-side bench, driven as a black box: definitions and runs through
 * the HTTP API, timings from the runs' events in Postgres (`run_events.created_at`, microseconds),
 * completion from the `runs` table. Nothing here imports the engine, the workers or the queues,
 * so the bench keeps measuring whatever implements the same API.
 */
import type { Sql } from 'postgres';
import { sleep, waitFor } from './bench-measure.js';

/** The step kinds the bench can build its no-op steps from. */
export const STEP_KINDS = ['context', 'function'] as const;
export type StepKind = (typeof STEP_KINDS)[number];

/** Shapes of the no-op definition: a chain (each step needs the one before) or 20 independent steps. */
export const SHAPES = ['chain', 'wide'] as const;
export type Shape = (typeof SHAPES)[number];

/** Slugs of the bench's definitions: the no-op chain, the no-op wide definition, the approvals. */
export const CHAIN_SLUG = 'bench-chain';
export const WIDE_SLUG = 'bench-wide';
export const APPROVAL_SLUG = 'bench-approval';

/** The slug of the no-op definition of `shape`. */
export function noopSlug(shape: Shape): string {
  return shape === 'chain' ? CHAIN_SLUG : WIDE_SLUG;
}

/** Run statuses after which nothing more happens. */
const TERMINAL = ['completed', 'failed', 'cancelled'];

/**
 * One trivial step:
 * - `context`: `type: context` with no LLM endpoint configured runs Baton's deterministic local
 *   provider in the worker's own event loop (an extract of a 2-character prompt): no thread hop,
 *   no network, no SQL of its own.
 * - `function`: `type: function` with `main` returning `{}`, run in the worker-thread QuickJS pool.
 */
function noopStep(kind: StepKind, id: string, needs: string[]): Record<string, unknown> {
  return kind === 'context'
    ? { id, type: 'context', needs, with: { prompt: 'ok' } }
    : { id, type: 'function', needs, code: 'function main() { return {}; }' };
}

const stepId = (i: number): string => `s${String(i + 1).padStart(2, '0')}`;

/** The no-op definition: `steps` trivial steps in a chain, or all independent (`wide`). */
export function noopDefinition(kind: StepKind, shape: Shape, steps: number): Record<string, unknown> {
  return {
    slug: noopSlug(shape),
    name: `Bench: no-op steps (${shape})`,
    description: `${steps} trivial ${kind} steps (${shape}), written for npm run bench`,
    input: { type: 'object' },
    steps: Array.from({ length: steps }, (_, i) => noopStep(kind, stepId(i), shape === 'chain' && i > 0 ? [stepId(i - 1)] : [])),
  };
}

/** `pairs` × (checkpoint `gNN` → no-op step `aNN`), in one chain. */
export function approvalDefinition(kind: StepKind, pairs: number): Record<string, unknown> {
  const steps: Array<Record<string, unknown>> = [];
  for (let i = 0; i < pairs; i += 1) {
    const n = String(i + 1).padStart(2, '0');
    steps.push({ id: `g${n}`, type: 'checkpoint', prompt: `bench gate ${n}`, decisions: ['continue'], ...(i > 0 ? { needs: [`a${String(i).padStart(2, '0')}`] } : {}) });
    steps.push(noopStep(kind, `a${n}`, [`g${n}`]));
  }
  return { slug: APPROVAL_SLUG, name: 'Bench: approvals', description: `${pairs} checkpoint → no-op pairs, written for npm run bench`, input: { type: 'object' }, steps };
}

/** A client of one Baton web process. */
export class BatonClient {
  constructor(
    readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  /** Headers of an API request (also used by autocannon). */
  headers(): Record<string, string> {
    return { authorization: `Bearer ${this.apiKey}`, 'content-type': 'application/json' };
  }

  /**
   * One API call; returns status and JSON body.
   * @throws Error when `expect` is given and the status differs.
   */
  async call<T>(method: string, path: string, body?: unknown, expect?: number): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.baseUrl}${path}`, { method, headers: this.headers(), ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const json = (await res.json().catch(() => null)) as T;
    if (expect !== undefined && res.status !== expect) throw new Error(`${method} ${path} answered ${res.status}: ${JSON.stringify(json)}`);
    return { status: res.status, body: json };
  }

  /** Create (the next version of) a definition. */
  async define(definition: Record<string, unknown>): Promise<void> {
    await this.call('POST', '/v1/definitions', definition, 201);
  }

  /** Create the bench's definitions unless they exist (the chain, the approvals, and `shape`'s). */
  async ensureDefinitions(kind: StepKind, shape: Shape, steps: number, pairs: number): Promise<void> {
    const wanted = [noopDefinition(kind, 'chain', steps), approvalDefinition(kind, pairs), ...(shape === 'chain' ? [] : [noopDefinition(kind, shape, steps)])];
    for (const definition of wanted) {
      const { status } = await this.call('GET', `/v1/definitions/${String(definition.slug)}`);
      if (status === 404) await this.define(definition);
    }
  }

  /** Start a run of `slug`; returns its id. */
  async startRun(slug: string): Promise<string> {
    const { body } = await this.call<{ id: string }>('POST', '/v1/runs', { definition: slug, input: {} }, 202);
    return body.id;
  }
}

/** Event times of runs, from Postgres, in epoch milliseconds with microsecond precision. */
interface EventTime {
  runId: string;
  stepId: string | null;
  type: string;
  at: number;
}

async function eventTimes(sql: Sql, runIds: readonly string[], types: readonly string[]): Promise<EventTime[]> {
  return sql<EventTime[]>`
    select run_id as "runId", step_id as "stepId", type, extract(epoch from created_at)::float8 * 1000 as at
    from run_events where run_id = any(${runIds as string[]}::uuid[]) and type = any(${types as string[]}) order by run_id, seq`;
}

/** Wait until every run is finished; returns the count per status. */
export async function waitForRuns(sql: Sql, runIds: readonly string[], timeoutMs: number): Promise<Record<string, number>> {
  let byStatus: Record<string, number> = {};
  await waitFor(
    `${runIds.length} runs finished`,
    async () => {
      const rows = await sql<Array<{ status: string; n: number }>>`
        select status, count(*)::int as n from runs where id = any(${runIds as string[]}::uuid[]) group by status`;
      byStatus = Object.fromEntries(rows.map((r) => [r.status, r.n]));
      return rows.filter((r) => TERMINAL.includes(r.status)).reduce((sum, r) => sum + r.n, 0) === runIds.length;
    },
    timeoutMs,
    50,
  );
  return byStatus;
}

/** @throws Error unless every run completed. */
function expectCompleted(byStatus: Record<string, number>, runs: number): void {
  if ((byStatus.completed ?? 0) !== runs) throw new Error(`Baton runs did not all complete: ${JSON.stringify(byStatus)}`);
}

/** Hops of a chain, two ways, in ms. */
export interface ChainTimes {
  /** A step's first `step.started` − its predecessor's first `step.completed` (the table's figure). */
  hops: number[];
  /**
   * A step's first `step.completed` − its predecessor's: the whole cycle of a no-op step, which
   * no bookkeeping of when a step counts as started can shorten.
   */
  cycles: number[];
}

/** Hops and cycles of chain runs (`sNN` needs `sNN-1`), from their events. */
async function chainTimes(sql: Sql, runIds: readonly string[], steps: number): Promise<ChainTimes> {
  const first = new Map<string, number>();
  for (const e of await eventTimes(sql, runIds, ['step.started', 'step.completed'])) {
    const key = `${e.runId}/${e.type}/${e.stepId ?? ''}`;
    if (!first.has(key)) first.set(key, e.at);
  }
  const times: ChainTimes = { hops: [], cycles: [] };
  for (const runId of runIds) {
    for (let i = 1; i < steps; i += 1) {
      const done = first.get(`${runId}/step.completed/${stepId(i - 1)}`);
      const started = first.get(`${runId}/step.started/${stepId(i)}`);
      const completed = first.get(`${runId}/step.completed/${stepId(i)}`);
      if (done === undefined || started === undefined || completed === undefined) {
        throw new Error(`run ${runId}: no step.completed of ${stepId(i - 1)} or no step.started/completed of ${stepId(i)} among its events`);
      }
      times.hops.push(started - done);
      times.cycles.push(completed - done);
    }
  }
  return times;
}

/**
 * Hop latency of runs alone: `runs` runs of the no-op chain one after the other (after one
 * untimed warm-up run), from their events.
 */
export async function batonHops(client: BatonClient, sql: Sql, runs: number, steps: number): Promise<ChainTimes> {
  const warmup = await client.startRun(CHAIN_SLUG);
  expectCompleted(await waitForRuns(sql, [warmup], 60_000), 1);
  const ids: string[] = [];
  for (let r = 0; r < runs; r += 1) {
    const id = await client.startRun(CHAIN_SLUG);
    expectCompleted(await waitForRuns(sql, [id], 60_000), 1);
    ids.push(id);
  }
  return chainTimes(sql, ids, steps);
}

/** From a decision (or promote) sent, in ms: until the next step started, and until it was done. */
export interface DecisionTimes {
  started: number[];
  done: number[];
}

interface RunApprovals {
  approvals: Array<{ id: string; stepId: string; status: string }>;
}

/**
 * Approval → next step started, one run at a time: for each checkpoint, wait until its approval
 * is pending and `settleMs` more (so that the job has parked), decide `continue` through the API,
 * and take the time from just before the request to the successor's `step.started` (and to its
 * `step.completed`).
 */
export async function batonApprovals(client: BatonClient, sql: Sql, runs: number, pairs: number, settleMs: number): Promise<DecisionTimes> {
  const result: DecisionTimes = { started: [], done: [] };
  for (let r = 0; r < runs + 1; r += 1) {
    const runId = await client.startRun(APPROVAL_SLUG);
    const decidedAt = new Map<string, number>();
    for (let i = 0; i < pairs; i += 1) {
      const gate = `g${String(i + 1).padStart(2, '0')}`;
      let approvalId: string | undefined;
      await waitFor(
        `approval of ${gate} pending`,
        async () => {
          const { body } = await client.call<RunApprovals>('GET', `/v1/runs/${runId}`, undefined, 200);
          approvalId = body.approvals.find((a) => a.stepId === gate && a.status === 'pending')?.id;
          return approvalId !== undefined;
        },
        60_000,
      );
      await sleep(settleMs);
      decidedAt.set(`a${gate.slice(1)}`, Date.now());
      await client.call('POST', `/v1/approvals/${approvalId}/decision`, { decision: 'continue' }, 200);
      await sleep(settleMs);
    }
    expectCompleted(await waitForRuns(sql, [runId], 60_000), 1);
    if (r === 0) continue; // the first run warms up
    const seen = new Set<string>();
    for (const e of await eventTimes(sql, [runId], ['step.started', 'step.completed'])) {
      const t0 = e.stepId ? decidedAt.get(e.stepId) : undefined;
      if (t0 === undefined || seen.has(`${e.type}/${e.stepId}`)) continue;
      seen.add(`${e.type}/${e.stepId}`);
      (e.type === 'step.started' ? result.started : result.done).push(e.at - t0);
    }
  }
  if (result.started.length !== runs * pairs) throw new Error(`expected ${runs * pairs} decided steps among the events, found ${result.started.length}`);
  return result;
}

/** What the throughput phase saw. */
export interface ThroughputResult {
  runIds: string[];
  /** Steps completed (`step.completed` events). */
  steps: number;
  /** From the first `POST /v1/runs` to the last `step.completed`, in ms. */
  wallMs: number;
}

/**
 * `runs` runs of definition `slug` in flight at once: POSTed `concurrency` at a time, then
 * waited for; steps/s over first POST → last `step.completed`.
 */
export async function batonThroughput(
  client: BatonClient,
  sql: Sql,
  slug: string,
  runs: number,
  concurrency: number,
  timeoutMs: number,
): Promise<ThroughputResult> {
  const runIds: string[] = [];
  const startedAt = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < runs) {
        next += 1;
        runIds.push(await client.startRun(slug));
      }
    }),
  );
  expectCompleted(await waitForRuns(sql, runIds, timeoutMs), runs);
  const [row] = await sql<Array<{ steps: number; last: number }>>`
    select count(*)::int as steps, max(extract(epoch from created_at)::float8 * 1000) as last
    from run_events where run_id = any(${runIds}::uuid[]) and type = 'step.completed'`;
  return { runIds, steps: row?.steps ?? 0, wallMs: (row?.last ?? NaN) - startedAt };
}
