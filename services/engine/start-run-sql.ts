/**
 * The common start of a run in one round trip: `baton_start_run`
 * (`db/migrations/0015_start-run-claim-fixed.sql`) writes what `startRun`'s general transaction
 * writes — the run, its steps, `run.queued`, the initially ready steps `queued` with their
 * `step.queued` — and decides the idempotency key, the pinned agent versions and whether a cached
 * "latest version" is still the latest, under one snapshot. About 12 statements (a pre-check, the
 * agent versions, BEGIN, the inserts, the lock, the events, COMMIT) become one.
 *
 * The starts of a process's concurrent requests share that statement (`baton_start_runs`,
 * migration 0021, through a `Batcher`): one round trip and one durable commit for all of them.
 *
 * It applies when readiness at the start is decided by `needs` alone: no step without needs has
 * a `when:` (whose condition the general `advance` evaluates). Otherwise `startRun` takes its
 * general transaction.
 */
import type { Definition } from '../../definitions/index.js';
import type { StepJobSpec } from '../../queues/index.js';
import { COMPENSATION_STATUS, compensationSteps, jobSpecFor } from './advance.js';
import type { EngineDeps } from './deps.js';
import type { RunStatus } from './statuses.js';
import { Batcher, byIndex } from '../../lib/index.js';

/** What the one-trip start needs of a definition, computed once per (immutable) version. */
interface StartPlan {
  /** The steps' rows: `[{id, type, agent, status, needs}]` as JSON text. */
  steps: string;
  /** Steps ready at the start, in definition order. */
  ready: string[];
  readySpecs: StepJobSpec[];
  /** Named agents the run pins. */
  agents: string[];
}

const plans = new WeakMap<Definition, StartPlan | null>();

/** The definition's start plan, or `null` when readiness at the start needs `advance`. */
function startPlanOf(definition: Definition): StartPlan | null {
  const known = plans.get(definition);
  if (known !== undefined) return known;
  const compensations = compensationSteps(definition);
  const roots = definition.steps.filter((s) => s.needs.length === 0 && !compensations.has(s.id));
  let plan: StartPlan | null = null;
  if (roots.every((s) => s.when === undefined)) {
    plan = {
      steps: JSON.stringify(
        definition.steps.map((s) => ({
          id: s.id,
          type: s.type,
          agent: s.kind === 'agent' ? s.agent : null,
          status: compensations.has(s.id) ? COMPENSATION_STATUS : 'pending',
          needs: s.needs,
        })),
      ),
      ready: roots.map((s) => s.id),
      readySpecs: roots.map((s) => jobSpecFor(s, 1)),
      agents: [...new Set(definition.steps.flatMap((s) => (s.kind === 'agent' ? [s.agent] : [])))],
    };
  }
  plans.set(definition, plan);
  return plan;
}

/** The run to insert, as `startRun` prepared it. */
export interface RunInsert {
  runId: string;
  organizationId: string;
  createdBy: string;
  definition: { id: string; slug: string; version: number; spec: Definition };
  /** Whether the definition was resolved as "the latest version" (checked again in the insert). */
  latest: boolean;
  input: unknown;
  sealedInput: string | null;
  webhookUrl: string | null;
  idempotencyKey: string | null;
  /** The request's fingerprint, stored with the key (`run-request.ts`); null without a key. */
  requestFingerprint: string | null;
  parent: { runId: string; stepId: string } | null;
  traceContext: Record<string, string> | null;
}

/** What the one-trip start did. */
export type RunInsertOutcome =
  /** Inserted: add the flow with `ready` (each job names the definition version); `emitted` are the events' seqs. */
  | { kind: 'created'; ready: StepJobSpec[]; emitted: number[] }
  /** The organization already has a run with this idempotency key. */
  | { kind: 'existing'; id: string; status: RunStatus }
  /** A newer version of the definition exists: look it up again. */
  | { kind: 'stale' };

/**
 * Insert a run in one statement (shared with the starts that come due meanwhile), when the
 * definition allows it.
 * @returns what happened, or `undefined` when the definition needs the general transaction.
 */
export async function insertRunInOneTrip(deps: EngineDeps, run: RunInsert): Promise<RunInsertOutcome | undefined> {
  const plan = startPlanOf(run.definition.spec);
  if (!plan) return undefined;
  const row = await startsOf(deps).submit({ run, plan });
  if (!row) throw new Error('baton_start_runs returned no row for the run');
  if (row.outcome === 'stale') return { kind: 'stale' };
  if (row.outcome === 'existing') return { kind: 'existing', id: row.run_id ?? '', status: row.run_status ?? 'queued' };
  const definitionId = run.definition.id;
  return {
    kind: 'created',
    ready: plan.readySpecs.map((spec) => ({ ...spec, definitionId })),
    emitted: Array.from({ length: 1 + plan.ready.length }, (_, i) => i + 1),
  };
}

/** One start for `baton_start_runs`. */
interface StartItem {
  run: RunInsert;
  plan: StartPlan;
}

/** What `baton_start_run` answers for one start. */
interface StartRow {
  outcome: 'created' | 'existing' | 'stale';
  run_id: string | null;
  run_status: RunStatus | null;
}

const batchers = new WeakMap<EngineDeps['database'], Batcher<StartItem, StartRow | undefined>>();

/** The run starts of this process's database (so of this process), batched. */
function startsOf(deps: EngineDeps): Batcher<StartItem, StartRow | undefined> {
  let found = batchers.get(deps.database);
  if (!found) {
    const { sql } = deps.database;
    found = new Batcher<StartItem, StartRow | undefined>(async (items) => {
      // The steps' rows are JSON text already (one per definition version): spliced, not re-encoded.
      const text = `[${items.map(({ run, plan }) => `${JSON.stringify(startFields(run, plan)).slice(0, -1)},"steps":${plan.steps}}`).join(',')}]`;
      const rows = await sql<Array<StartRow & { idx: number }>>`select * from baton_start_runs(${text}::jsonb)`;
      return byIndex(rows, items.length, (row) => row.idx);
    });
    batchers.set(deps.database, found);
  }
  return found;
}

/** `baton_start_run`'s arguments for one start, but its steps (see `baton_start_runs`, migration 0021). */
function startFields(run: RunInsert, plan: StartPlan): Record<string, unknown> {
  return {
    id: run.runId,
    org: run.organizationId,
    definition: run.definition.id,
    slug: run.definition.slug,
    version: run.definition.version,
    latest: run.latest,
    input: run.input,
    sealed: run.sealedInput,
    agents: plan.agents,
    webhook: run.webhookUrl,
    key: run.idempotencyKey,
    createdBy: run.createdBy,
    parentRun: run.parent?.runId ?? null,
    parentStep: run.parent?.stepId ?? null,
    trace: run.traceContext,
    ready: plan.ready,
    fingerprint: run.requestFingerprint,
  };
}
