/**
 * The hot path of a step: claim a queued step, complete a running one, and decide the
 * `continue` that settles a checkpoint, each in one round trip to a server-side function
 * (`db/migrations/0006_hot-path.sql`: `baton_claim_step`, `baton_complete_step`; 0015:
 * `baton_claim_step_fixed`; 0016: `baton_decide_continue`; 0018: `baton_claim_step_at`,
 * `baton_finish_step`; 0019: `baton_finish_steps`) — the way BullMQ keeps a job transition in
 * one Lua script.
 *
 * With the claim deferred (`STEP_CLAIM_DEFER_MS`, the default; see `ARCHITECTURE.md`) a plain
 * step costs a read of its run and step (skipped for a fixed-input step of a run this process
 * knows) and one statement that claims and completes it, one durable commit; the reads and the
 * completions of a worker's concurrent jobs share statements (`Batcher`). No statement reads
 * every step of the run or an output the step does not name, so a hop costs the same in a long
 * run.
 *
 * Each function here answers `undefined` when its case is not the common one (first step of a
 * run, parent steps, checkpoints, cached steps, decided input, a run cancelling, a fenced
 * attempt…); the caller then takes the general path (`steps.ts`, under `withRun`), which
 * handles every case. Both paths take the run's row lock first, so they serialise as before.
 */
import { Batcher, Redactor, byIndex } from '../../lib/index.js';
import { evaluateMapping, type Definition, type StepSpec } from '../../definitions/index.js';
import { rootJobId, stepJobId, type StepJobData } from '../../queues/index.js';
import { advance, jobSpecFor, loadSteps } from './advance.js';
import { approvalSummary, definitionById, type ApprovalRow } from '../store/index.js';
import type { EngineDeps } from './deps.js';
import { applyEffects, eventsNotify, withRun } from './run-scope.js';
import { primeRunDestination } from './webhooks.js';
import { secretsForMapping, unsealRunInput } from './sensitive.js';
import type { RunStatus, StepStatus } from './statuses.js';
import { enqueueSteps, type AttemptRun, type StepRecord, type StepStart } from './steps.js';

interface ClaimRow {
  run_status: RunStatus;
  organization_id: string;
  definition_id: string;
  definition_slug: string;
  definition_version: number;
  agent_versions: Record<string, number>;
  webhook_url: string | null;
  input: unknown;
  sealed_input: string | null;
  status: StepStatus;
  generation: number;
  attempts: number;
  overridden: boolean;
}

/** What a definition's step needs on the hot path, computed once per (immutable) definition. */
interface StepPlan {
  /** Step ids named anywhere in the step's `with:` (a superset of what its mapping reads). */
  referenced: string[];
  /** Steps that need this one. */
  successors: StepSpec[];
  /** Of those, the ones whose readiness depends on their needs alone (no `when:`). */
  plain: string[];
  /**
   * Whether the step's input is fixed by the definition (a `with:` without templates, so no
   * run input, output or secret goes into it) and no run input of the definition is sealed:
   * claimed by `baton_claim_step_fixed` without reading the run first.
   */
  fixed: boolean;
}

const plans = new WeakMap<Definition, Map<string, StepPlan>>();

function planOf(definition: Definition, stepId: string): StepPlan {
  let byStep = plans.get(definition);
  if (!byStep) {
    byStep = new Map();
    plans.set(definition, byStep);
  }
  let plan = byStep.get(stepId);
  if (!plan) {
    const spec = definition.steps.find((s) => s.id === stepId);
    const text = JSON.stringify(spec && 'with' in spec ? (spec.with ?? null) : null);
    const successors = definition.steps.filter((s) => s.needs.includes(stepId));
    plan = {
      referenced: definition.steps.filter((s) => s.id !== stepId && text.includes(s.id)).map((s) => s.id),
      successors,
      plain: successors.filter((s) => s.when === undefined).map((s) => s.id),
      fixed: spec !== undefined && isPlainStep(spec) && !text.includes('${{') && !mentionsSensitiveInput(definition),
    };
    byStep.set(stepId, plan);
  }
  return plan;
}

/**
 * Whether the definition's input schema may mark a field sensitive (`writeOnly`, `format:
 * password`), i.e. its runs may have sealed input (conservative: any mention counts).
 */
function mentionsSensitiveInput(definition: Definition): boolean {
  const text = JSON.stringify(definition.input);
  return text.includes('"writeOnly"') || text.includes('"password"');
}

/** Whether a step is claimed by the hot path: a leaf agent step that runs its own input. */
function isPlainStep(spec: StepSpec): boolean {
  if (spec.kind === 'checkpoint' || spec.kind === 'orchestrator') return false;
  if (spec.foreach !== undefined || (spec.kind === 'agent' && spec.type === 'orchestrator')) return false;
  return spec.cacheTtlMs === undefined;
}

/**
 * Claim a queued step of a running run for its next attempt, resolving its `with:` input.
 * @param defer - leave the attempt unrecorded: the answer carries a {@link DeferredClaim} (a
 *   queued run's first step qualifies too: the deferred claim starts the run).
 * @param attemptsMade - BullMQ's attempts of the job before this one (see `deferFixedStep`).
 * @returns the attempt to run, or `undefined` to take the general path (`beginStep`).
 */
export async function claimQueuedStep(deps: EngineDeps, data: StepJobData, jobId: string, defer = false, attemptsMade?: number): Promise<StepStart | undefined> {
  if (data.definitionId !== undefined && !defer) {
    const fixed = await claimFixedStep(deps, data, data.definitionId, jobId);
    if (fixed !== 'not-fixed') return fixed;
  }
  if (defer && data.definitionId !== undefined && attemptsMade !== undefined) {
    const known = await deferFixedStep(deps, data, data.definitionId, jobId, attemptsMade);
    if (known) return known;
  }
  const { sql } = deps.database;
  const row = await batchersOf(deps).reads.submit({ runId: data.runId, stepId: data.stepId });
  if (!row || row.status !== 'queued' || row.generation !== data.generation || row.overridden) return undefined;
  // A queued run's first step is claimed by the deferred claim (which starts the run), or else
  // by the general path.
  if (row.run_status !== 'running' && !(defer && row.run_status === 'queued')) return undefined;
  const { spec: definition } = await definitionById(deps.database.db, row.definition_id);
  const spec = definition.steps.find((s) => s.id === data.stepId);
  if (!spec || !isPlainStep(spec)) return undefined;

  const plan = planOf(definition, spec.id);
  const outputs =
    plan.referenced.length === 0
      ? []
      : await sql<Array<{ step_id: string; status: StepStatus; output: unknown }>>`
          select step_id, status, output from steps where run_id = ${data.runId} and step_id = any(${plan.referenced})`;
  const real = unsealRunInput(deps, { id: data.runId, input: row.input, sealedInput: row.sealed_input });
  let input: unknown;
  let sensitive: string[];
  try {
    const secrets = await secretsForMapping(deps, deps.database.db, row.organization_id, spec.with);
    input = await evaluateMapping(spec.with, {
      input: real.input,
      steps: Object.fromEntries(outputs.map((o) => [o.step_id, { output: o.output, status: o.status }])),
      run: { id: data.runId, definition: row.definition_slug },
      secrets,
    });
    sensitive = [...real.values, ...Object.values(secrets)];
  } catch {
    return undefined; // the general path records the mapping failure
  }
  const stored = new Redactor(sensitive).redact(input ?? null);
  const notify = eventsNotify({ webhookUrl: row.webhook_url });
  const run: AttemptRun = {
    organizationId: row.organization_id,
    definitionId: row.definition_id,
    definition: { slug: row.definition_slug, version: row.definition_version },
    agentVersions: row.agent_versions,
    webhookUrl: row.webhook_url,
  };
  const idempotencyKey = stepJobId(data.runId, data.stepId, data.generation);
  rememberRun(data.runId, run);
  if (defer) {
    primeRunDestination(deps, data.runId, run);
    const claim: DeferredClaim = { state: 'due', jobId, attempts: row.attempts, storedInput: stored, notify };
    return { kind: 'run', attempt: row.attempts + 1, input, spec, idempotencyKey, sensitive, run, claim };
  }
  const [claimed] = await sql<Array<{ attempt: number; seq: number }>>`
    select * from baton_claim_step(${data.runId}, ${data.stepId}, ${data.generation}, ${row.attempts}, ${jobId},
                                   ${jsonText(stored)}::jsonb, ${notify})`;
  if (!claimed) return undefined;
  primeRunDestination(deps, data.runId, run);
  await applyEffects(deps, data.runId, [], [claimed.seq]);
  return { kind: 'run', attempt: claimed.attempt, input, spec, idempotencyKey, sensitive, run };
}

/** What attempts need of the runs this process read lately (immutable for a run), by run id. */
const knownRuns = new Map<string, AttemptRun>();
/** Runs kept in {@link knownRuns} (oldest forgotten first). */
const KNOWN_RUNS = 10_000;

/** Remember what attempts need of run `runId` (see {@link knownRuns}). */
export function rememberRun(runId: string, run: AttemptRun): void {
  if (knownRuns.has(runId)) return;
  if (knownRuns.size >= KNOWN_RUNS) knownRuns.delete(knownRuns.keys().next().value ?? '');
  knownRuns.set(runId, run);
}

/**
 * A fixed-input step of a run this process knows, deferred without reading anything: its input
 * is the definition's, its run's attempt data is remembered, and its attempts are taken to be
 * BullMQ's (`attemptsMade`: equal unless an attempt was lost). The fence of its claim checks all
 * of it (run queued or running, step queued at the job's generation with that many attempts, no
 * decided input); when it fails, the worker runs the step again on the general path
 * (`DeferredClaim.optimistic`).
 * @returns the start, or `undefined` when the run is not known or the step's input not fixed.
 */
async function deferFixedStep(deps: EngineDeps, data: StepJobData, definitionId: string, jobId: string, attemptsMade: number): Promise<StepStart | undefined> {
  const run = knownRuns.get(data.runId);
  if (!run || run.definitionId !== definitionId) return undefined;
  const fixed = await fixedInputOf(deps, data, definitionId);
  if (!fixed) return undefined;
  const { spec, input } = fixed;
  const claim: DeferredClaim = { state: 'due', jobId, attempts: attemptsMade, storedInput: input ?? null, notify: eventsNotify(run), optimistic: true };
  const idempotencyKey = stepJobId(data.runId, data.stepId, data.generation);
  return { kind: 'run', attempt: attemptsMade + 1, input, spec, idempotencyKey, sensitive: [], run, claim };
}

/**
 * The claim of an attempt whose agent started before it was recorded (`claimQueuedStep` with
 * `defer`): the worker either claims it once `STEP_CLAIM_DEFER_MS` passed ({@link claimDeferred})
 * or, when the agent finished first, claims and completes it in one transaction
 * ({@link completeRunningStep}). Both are fenced on the state the worker read: the step queued
 * at the job's generation with `attempts` attempts, its run queued or running.
 */
export interface DeferredClaim {
  /** `due`: not recorded yet; `claimed`: recorded running; `refused`: the fence failed (nothing written). */
  state: 'due' | 'claimed' | 'refused';
  jobId: string;
  /** The step's attempts when it was read (the attempt is the next one). */
  attempts: number;
  /** The resolved input as stored (redacted). */
  storedInput: unknown;
  notify: boolean;
  /**
   * Deferred without reading the step (`deferFixedStep`): when its fence fails, the agent's
   * result is not recorded and the step runs again on the general path.
   */
  optimistic?: boolean;
}

/**
 * Record a deferred claim: the attempt running since `elapsedMs` ago (`baton_claim_step_at`,
 * migration 0018, committed asynchronously like every claim).
 * @returns whether it was recorded; `false` when the step or run changed since it was read
 *   (nothing written: the caller stops the agent and takes the general path).
 */
export async function claimDeferred(deps: EngineDeps, data: StepJobData, claim: DeferredClaim, elapsedMs: number): Promise<boolean> {
  if (claim.state !== 'due') return claim.state === 'claimed';
  const [claimed] = await deps.database.sql<Array<{ attempt: number; first_seq: number; last_seq: number }>>`
    select * from baton_claim_step_at(${data.runId}, ${data.stepId}, ${data.generation}, ${claim.attempts}, ${claim.jobId},
                                      ${jsonText(claim.storedInput)}::jsonb, ${claim.notify}, ${elapsedMs})`;
  claim.state = claimed ? 'claimed' : 'refused';
  if (claimed) await applyEffects(deps, data.runId, [], range(claimed.first_seq, claimed.last_seq));
  return claimed !== undefined;
}

/**
 * The step of a job that names its definition version, with its input, when the definition fixes
 * that input (a `with:` without templates, no sensitive run input: `StepPlan.fixed`).
 * @returns `undefined` when the step's input is not fixed.
 */
async function fixedInputOf(deps: EngineDeps, data: StepJobData, definitionId: string): Promise<{ spec: StepSpec; input: unknown } | undefined> {
  const { spec: definition } = await definitionById(deps.database.db, definitionId);
  const spec = definition.steps.find((s) => s.id === data.stepId);
  if (!spec || !planOf(definition, spec.id).fixed) return undefined;
  const input = await evaluateMapping('with' in spec ? spec.with : undefined, { input: null, steps: {}, run: { id: data.runId, definition: definition.slug } });
  return { spec, input };
}

interface FixedClaimRow {
  attempt: number;
  first_seq: number;
  last_seq: number;
  organization_id: string;
  definition_slug: string;
  definition_version: number;
  agent_versions: Record<string, number>;
  webhook_url: string | null;
}

/**
 * Claim a step whose input the definition fixes, in one statement (the job names the
 * definition version, so the step and its input are known before any SQL).
 * @returns the attempt; `undefined` to take the general path (the run is not queued or running
 *   at that definition, has sealed input, or the step is not queued at that generation);
 *   `'not-fixed'` when the step's input is not fixed (the caller reads the run first).
 */
async function claimFixedStep(deps: EngineDeps, data: StepJobData, definitionId: string, jobId: string): Promise<StepStart | undefined | 'not-fixed'> {
  const fixed = await fixedInputOf(deps, data, definitionId);
  if (!fixed) return 'not-fixed';
  const { spec, input } = fixed;
  const [claimed] = await deps.database.sql<FixedClaimRow[]>`
    select * from baton_claim_step_fixed(${data.runId}, ${data.stepId}, ${data.generation}, ${definitionId}, ${jobId},
                                         ${jsonText(input ?? null)}::jsonb)`;
  if (!claimed) return undefined;
  const run: AttemptRun = {
    organizationId: claimed.organization_id,
    definitionId,
    definition: { slug: claimed.definition_slug, version: claimed.definition_version },
    agentVersions: claimed.agent_versions,
    webhookUrl: claimed.webhook_url,
  };
  primeRunDestination(deps, data.runId, run);
  await applyEffects(deps, data.runId, [], range(claimed.first_seq, claimed.last_seq));
  const idempotencyKey = stepJobId(data.runId, data.stepId, data.generation);
  return { kind: 'run', attempt: claimed.attempt, input, spec, idempotencyKey, sensitive: [], run };
}

/**
 * Record a running attempt's output and queue the successors that became ready, in one
 * transaction. Successors with a `when:` (or whose needs did not all complete) are decided by
 * the general `advance` right after, in a second transaction.
 * @param extra - event data added to `step.completed`.
 * @returns the record, or `undefined` to take the general path (`completeStep`).
 */
export async function completeRunningStep(
  deps: EngineDeps,
  data: StepJobData,
  attempt: number,
  output: unknown,
  extra: Record<string, unknown>,
  run: AttemptRun,
  claim?: DeferredClaim,
  elapsedMs = 0,
): Promise<StepRecord | undefined> {
  const { sql } = deps.database;
  const { spec: definition } = await definitionById(deps.database.db, run.definitionId);
  const plan = planOf(definition, data.stepId);
  const json = output === undefined ? null : output;
  const notify = eventsNotify(run);
  if (claim?.state === 'due') {
    const finished = await batchersOf(deps).finishes.submit({
      run: data.runId,
      step: data.stepId,
      generation: data.generation,
      attempts: claim.attempts,
      job: claim.jobId,
      input: claim.storedInput ?? null,
      output: json,
      event: extra,
      candidates: plan.plain,
      notify,
      elapsedMs,
    });
    claim.state = finished ? 'claimed' : 'refused';
    if (!finished) return undefined;
    return { recorded: true, queued: await afterCompletion(deps, data.runId, run.definitionId, definition, plan, finished) };
  }
  const [done] = await sql<Completion[]>`
    select * from baton_complete_step(${data.runId}, ${data.stepId}, ${data.generation}, ${attempt},
                                      ${jsonText(json)}::jsonb, ${jsonText({ attempt, ...extra })}::jsonb,
                                      ${plan.plain}, ${notify})`;
  if (!done) return undefined;
  return { recorded: true, queued: await afterCompletion(deps, data.runId, run.definitionId, definition, plan, done) };
}

/** What `baton_complete_step` and `baton_decide_continue` answer about the successors. */
interface Completion {
  queued: Array<{ stepId: string; generation: number }>;
  needs_advance: boolean;
  first_seq: number;
  last_seq: number;
  root_generation: number;
}

/**
 * After a completion committed: add the queued successors' jobs and hand its events to webhook
 * delivery; then let the general `advance` decide the successors the function could not.
 * @returns the step ids queued.
 */
async function afterCompletion(deps: EngineDeps, runId: string, definitionId: string, definition: Definition, plan: StepPlan, done: Completion): Promise<string[]> {
  const specs = new Map(definition.steps.map((s) => [s.id, s]));
  const rootId = rootJobId(runId, done.root_generation);
  const jobs = done.queued.flatMap((q) => {
    const spec = specs.get(q.stepId);
    return spec ? [{ kind: 'step' as const, runId, rootId, spec: { ...jobSpecFor(spec, q.generation), definitionId } }] : [];
  });
  await applyEffects(deps, runId, jobs, range(done.first_seq, done.last_seq));
  const queued = done.queued.map((q) => q.stepId);
  if (done.needs_advance || plan.plain.length < plan.successors.length) queued.push(...(await advanceRun(deps, runId)));
  return queued;
}

/** A settling `continue`, as `decisions.ts` resolved it before taking any lock. */
export interface ContinueDecision {
  /** The approval as read (unlocked): `baton_decide_continue` checks again under the lock. */
  approval: ApprovalRow;
  run: { organizationId: string; definitionId: string; webhookUrl: string | null };
  /** Who decides (for a link, the identity it was minted for). */
  identity: string;
  via: 'token' | 'api-key';
  comment: string | null;
  /** The modified data, already validated against the checkpoint's `modify` (null: none). */
  data: unknown;
  client: { ip?: string; userAgent?: string } | undefined;
  /** The link to spend, when deciding by one. */
  token: { jti: string; approver: string } | undefined;
}

/** SQLSTATE `baton_decide_continue` raises when it met a case it leaves to the general path. */
const NOT_THE_COMMON_CASE = 'BAT01';

/**
 * Decide an approval `continue` whose single response settles it, finishing its checkpoint
 * step and queueing the successors, in one round trip (`baton_decide_continue`, migration
 * 0016). The caller (`decideApproval`) uses it only for an API key or a link on an approval
 * with `required: 1`; any other case found under the lock (decided meanwhile, expired, link
 * used, self-approval, step no longer waiting…) changes nothing here and answers `undefined`,
 * and the general path then answers it with its own error.
 * @returns the decided approval and the successors queued, or `undefined` (general path).
 */
export async function decideContinue(deps: EngineDeps, d: ContinueDecision): Promise<{ approval: ApprovalRow; queued: string[] } | undefined> {
  const { spec: definition } = await definitionById(deps.database.db, d.run.definitionId);
  const spec = definition.steps.find((s) => s.id === d.approval.stepId);
  if (spec?.kind !== 'checkpoint') return undefined;
  const plan = planOf(definition, spec.id);
  const won: ApprovalRow = { ...d.approval, status: 'decided', decision: 'continue', comment: d.comment, decidedBy: d.identity, decidedVia: d.via, data: d.data, decidedAt: null };
  // The same event and output as the general path (decideApproval, applyDecision); the function
  // fills in `decidedAt` (Postgres time, as the general path's `now()`).
  const resolved = { approval: approvalSummary(won), decision: 'continue', decidedBy: d.identity, via: d.via };
  const output = { decision: 'continue', comment: d.comment, decidedBy: d.identity, decidedVia: d.via, decidedAt: null, data: d.data };
  let rows: Array<Completion & { decided_at: string }>;
  try {
    rows = await deps.database.sql<Array<Completion & { decided_at: string }>>`
      select * from baton_decide_continue(${d.approval.runId}, ${d.approval.id}, ${d.identity}, ${d.via}, ${d.comment},
                                          ${jsonText(d.data)}::jsonb, ${d.client?.ip ?? null}, ${d.client?.userAgent ?? null},
                                          ${d.token?.jti ?? null}, ${d.token?.approver ?? null}, ${JSON.stringify(resolved)}::jsonb,
                                          ${JSON.stringify(output)}::jsonb, ${plan.plain}, ${eventsNotify(d.run)})`;
  } catch (err) {
    if ((err as { code?: unknown }).code === NOT_THE_COMMON_CASE) return undefined;
    throw err;
  }
  const [done] = rows;
  if (!done) return undefined;
  primeRunDestination(deps, d.approval.runId, d.run);
  const queued = await afterCompletion(deps, d.approval.runId, d.run.definitionId, definition, plan, done);
  return { approval: { ...won, decidedAt: new Date(done.decided_at) }, queued };
}

/** `advance` on its own, under the run's lock: queue or skip whatever became decidable. */
async function advanceRun(deps: EngineDeps, runId: string): Promise<string[]> {
  return withRun(deps, runId, async (scope) => {
    const { spec: definition } = await definitionById(scope.tx, scope.run.definitionId);
    const ready = await advance(scope, definition, await loadSteps(scope));
    enqueueSteps(scope, ready);
    return ready.map((r) => r.stepId);
  });
}

/** A value as JSON text for a `::jsonb` parameter (`null` → SQL NULL, as the general path stores it). */
function jsonText(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

function range(first: number, last: number): number[] {
  return Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => first + i);
}

/** One step to read for its claim. */
interface ReadItem {
  runId: string;
  stepId: string;
}

/** One deferred claim to record with its completion (`baton_finish_step`'s arguments, as JSON). */
interface FinishItem {
  run: string;
  step: string;
  generation: number;
  attempts: number;
  job: string;
  input: unknown;
  output: unknown;
  event: Record<string, unknown>;
  candidates: string[];
  notify: boolean;
  elapsedMs: number;
}

type Sql = EngineDeps['database']['sql'];

/** The hot path's batched statements, one set per database (so per process). */
interface Batchers {
  reads: Batcher<ReadItem, ClaimRow | undefined>;
  finishes: Batcher<FinishItem, Completion | undefined>;
}

const batchers = new WeakMap<EngineDeps['database'], Batchers>();

function batchersOf(deps: EngineDeps): Batchers {
  let found = batchers.get(deps.database);
  if (!found) {
    const { sql } = deps.database;
    found = { reads: new Batcher((items) => readSteps(sql, items)), finishes: new Batcher((items) => finishSteps(sql, items)) };
    batchers.set(deps.database, found);
  }
  return found;
}

/** The run and step rows a claim needs, for several steps in one statement (`undefined`: no such step). */
async function readSteps(sql: Sql, items: ReadItem[]): Promise<Array<ClaimRow | undefined>> {
  const rows = await sql<Array<ClaimRow & { i: number }>>`
    select x.i::int as i, r.status as run_status, r.organization_id, r.definition_id, r.definition_slug, r.definition_version,
           r.agent_versions, r.webhook_url, r.input, r.sealed_input,
           s.status, s.generation, s.attempts, s.input_override is not null as overridden
      from unnest(${items.map((i) => i.runId)}::uuid[], ${items.map((i) => i.stepId)}::text[]) with ordinality as x(run_id, step_id, i)
      join runs r on r.id = x.run_id
      join steps s on s.run_id = x.run_id and s.step_id = x.step_id`;
  return byIndex(rows, items.length, (row) => row.i - 1);
}

/** `baton_finish_steps` (migration 0019): deferred claims with their completions, one durable commit. */
async function finishSteps(sql: Sql, items: FinishItem[]): Promise<Array<Completion | undefined>> {
  const rows = await sql<Array<Completion & { idx: number }>>`select * from baton_finish_steps(${JSON.stringify(items)}::jsonb)`;
  return byIndex(rows, items.length, (row) => row.idx);
}
