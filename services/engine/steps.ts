/**
 * A step attempt's lifecycle: begin (claim), complete, fail. Each is one `withRun` transaction.
 *
 * Attempts are fenced in Postgres: only the current attempt (`steps.attempts`) of a step that is
 * still running may record a result. A job that lost its lock and was re-delivered elsewhere
 * starts a new attempt, which marks the old one `lost`; if the old one finishes later, its
 * result is refused. So a step is recorded completed at most once, whatever BullMQ delivers.
 */
import { createHash } from 'node:crypto';
import { and, desc, eq, sql } from 'drizzle-orm';
import { Redactor, ValidationError, canonicalJson, isInfrastructureError, serializeError, type SerializedError } from '../../lib/index.js';
import { runs, stepAttempts, steps, type AttemptStatus } from '../../db/index.js';
import { descendantsOf, evaluateMapping, type Definition, type ExpressionScope, type StepSpec } from '../../definitions/index.js';
import { rootJobId, stepJobId, type StepJobData, type StepJobSpec } from '../../queues/index.js';
import { advance, compensatedStep, compensationSteps, liveJobSpecs, loadSteps, scopeOf, type StepRow } from './advance.js';
import { definitionById } from '../store/index.js';
import type { EngineDeps } from './deps.js';
import { withRun, type RunScope } from './run-scope.js';
import { secretsForMapping, unsealRunInput } from './sensitive.js';
import { engineFailure, isRunActive, type FailureCode } from './statuses.js';
import { claimQueuedStep, completeRunningStep, rememberRun, type DeferredClaim } from './hot-path.js';

/** Error code of a checkpoint step that a person (or its deadline) aborted. */
export const APPROVAL_ABORTED = 'APPROVAL_ABORTED' satisfies FailureCode;

/** Outcome of claiming a step job. */
export type StepStart =
  /**
   * Execute the agent with `input` (real values; stored redacted). `sensitive` lists the secret
   * and write-only input values it may contain: redact them from anything the attempt reports.
   */
  | {
      kind: 'run';
      attempt: number;
      input: unknown;
      spec: StepSpec;
      idempotencyKey: string;
      sensitive: string[];
      run: AttemptRun;
      /** Present when the attempt is not recorded yet (`beginStep` with `deferClaim`): see {@link DeferredClaim}. */
      claim?: DeferredClaim;
    }
  /** A checkpoint re-entering after it parked (its approval exists). */
  | { kind: 'waiting'; attempt: number; spec: StepSpec }
  /**
   * A parent step (fan-out or sub-orchestration) woken by its children, or re-delivered while
   * setting them up: continue with the same attempt.
   */
  | { kind: 'resume'; attempt: number; spec: StepSpec; input: unknown; idempotencyKey: string; sensitive: string[]; run: AttemptRun }
  /** The output came from the cache (D5): recorded; add `ready` under `rootJobId` and ack. */
  | { kind: 'cached' }
  /** Already completed or skipped: make sure the jobs its successors need exist, then ack. */
  | { kind: 'finished' }
  /** Nothing to do: stale generation, run over, or input mapping failed (recorded). */
  | { kind: 'inactive'; reason: string };

/** The step generation a transition is about. */
export type StepRef = Pick<StepJobData, 'runId' | 'stepId' | 'generation'>;

/** What an attempt knows of its run: tenant, definition version and pinned agent versions. */
export interface AttemptRun {
  organizationId: string;
  /** The definition version's row id (definitions are immutable: cached by id). */
  definitionId: string;
  /** Where the run's events go, if anywhere. */
  webhookUrl: string | null;
  definition: { slug: string; version: number };
  /** Agent versions the run pinned when it started (`{name: version}`). */
  agentVersions: Record<string, number>;
}

/** What an attempt knows of its run, from the run row. */
export function attemptRun(run: RunScope['run']): AttemptRun {
  return {
    organizationId: run.organizationId,
    definitionId: run.definitionId,
    webhookUrl: run.webhookUrl,
    definition: { slug: run.definitionSlug, version: run.definitionVersion },
    agentVersions: run.agentVersions,
  };
}

/** Outcome of recording a result (the successors' jobs are enqueued by the engine itself). */
export interface StepRecord {
  /** False when the attempt was fenced out (a newer attempt owns the step). */
  recorded: boolean;
  /** Steps queued by this transition (their jobs are added after the commit). */
  queued: string[];
}

/** Enqueue `ready` as children of the run's current root (after commit) and say what happened. */
function record(scope: RunScope, recorded: boolean, ready: StepJobSpec[] = []): StepRecord {
  enqueueSteps(scope, ready);
  return { recorded, queued: ready.map((r) => r.stepId) };
}

/** Enqueue step jobs as children of the run's current root job, once the transaction commits. */
export function enqueueSteps(scope: RunScope, specs: readonly StepJobSpec[]): void {
  const rootId = rootJobId(scope.run.id, scope.run.rootGeneration);
  const { definitionId } = scope.run; // lets a fixed-input step's claim skip reading the run (hot-path.ts)
  scope.enqueue(...specs.map((spec) => ({ kind: 'step' as const, runId: scope.run.id, rootId, spec: { ...spec, definitionId } })));
}

interface Located {
  scope: RunScope;
  definition: Definition;
  rows: StepRow[];
  row: StepRow;
  spec: StepSpec;
}

async function locate(deps: EngineDeps, scope: RunScope, stepId: string): Promise<Located | undefined> {
  const { spec: definition } = await definitionById(scope.tx, scope.run.definitionId);
  const rows = await loadSteps(scope);
  const row = rows.find((r) => r.stepId === stepId);
  const spec = definition.steps.find((s) => s.id === stepId);
  return row && spec ? { scope, definition, rows, row, spec } : undefined;
}

/**
 * Whether a step runs children and waits for them: a fan-out (`foreach:`), a sub-orchestration
 * (`type: orchestrator`) or an orchestrator named agent (its child runs).
 */
export function isParentStep(spec: StepSpec): boolean {
  if (spec.kind === 'orchestrator') return true;
  if (spec.kind === 'checkpoint') return false;
  return spec.foreach !== undefined || (spec.kind === 'agent' && spec.type === 'orchestrator');
}


/**
 * Claim a step job: start a new attempt (resolving the step's `with:` input) or explain why not.
 * @param jobId - the BullMQ job id, recorded on the attempt.
 * @param options.deferClaim - for a plain step on the hot path, read the step and resolve its
 *   input but leave the attempt unrecorded: the answer carries a {@link DeferredClaim} for the
 *   caller to record with `claimDeferred` or with the completion (`completeStep`).
 * @param options.attemptsMade - BullMQ's attempts of the job before this one: lets a deferred
 *   claim of a fixed-input step in a run this process knows skip the read (its fence checks it).
 */
export async function beginStep(deps: EngineDeps, data: StepJobData, jobId: string, options: { deferClaim?: boolean; attemptsMade?: number } = {}): Promise<StepStart> {
  const claimed = await claimQueuedStep(deps, data, jobId, options.deferClaim ?? false, options.attemptsMade);
  if (claimed) return claimed;
  return withRun(deps, data.runId, async (scope) => {
    const at = await locate(deps, scope, data.stepId);
    if (!at) return { kind: 'inactive', reason: `step ${data.stepId} is not part of run ${data.runId}` };
    const { row, spec, rows, definition } = at;
    if (row.generation !== data.generation) return { kind: 'inactive', reason: `generation ${data.generation} is stale` };
    if (row.status === 'completed' || row.status === 'skipped') {
      enqueueSteps(scope, liveJobSpecs(definition, rows));
      return { kind: 'finished' };
    }
    const compensating = scope.run.status === 'cancelling' && compensationSteps(definition).has(row.stepId);
    if (!isRunActive(scope.run.status) && !compensating) return { kind: 'inactive', reason: `run is ${scope.run.status}` };
    if (row.status === 'waiting') return { kind: 'waiting', attempt: row.attempts, spec };
    if (row.status !== 'queued' && row.status !== 'running') {
      return { kind: 'inactive', reason: `step is ${row.status}` };
    }

    const { tx } = scope;
    const isParent = isParentStep(spec);
    if (row.status === 'running' && isParent) {
      // The recorded input is redacted; a parent re-resolves it (sub-run input may need real values).
      const real = await resolveInput(deps, scope, definition, spec, row, rows).catch((err: unknown) => {
        if (isInfrastructureError(err)) throw err;
        return { input: row.input, sensitive: [] as string[] };
      });
      return { kind: 'resume', attempt: row.attempts, spec, input: real.input, idempotencyKey: stepJobId(row.runId, row.stepId, row.generation), sensitive: real.sensitive, run: attemptRun(scope.run) };
    }
    if (row.status === 'running') {
      // Re-delivery after a crash or a lost lock: the previous attempt will never report.
      await tx
        .update(stepAttempts)
        .set({ status: 'lost', finishedAt: sql`now()` })
        .where(
          and(
            eq(stepAttempts.runId, row.runId),
            eq(stepAttempts.stepId, row.stepId),
            eq(stepAttempts.attempt, row.attempts),
            eq(stepAttempts.status, 'running'),
          ),
        );
    }
    if (scope.run.status === 'queued') {
      await tx.execute(sql`update runs set status = 'running', started_at = now() where id = ${row.runId}`);
      scope.run.status = 'running';
      await scope.emit('run.started', null, {});
    }

    const attempt = row.attempts + 1;
    let input: unknown;
    let sensitive: string[] = [];
    let mappingError: SerializedError | undefined;
    try {
      ({ input, sensitive } = await resolveInput(deps, scope, definition, spec, row, rows));
    } catch (err) {
      // Our own Postgres failing (e.g. loading a secret: 53300) is no mapping failure: the job runs again.
      if (isInfrastructureError(err)) throw err;
      const serialized = serializeError(err);
      const kept = serialized.code === 'MISSING_SECRET' || serialized.code === 'EXPRESSION_TIMEOUT';
      mappingError = { ...serialized, code: kept ? serialized.code : ('INPUT_MAPPING_FAILED' satisfies FailureCode) };
    }
    const redactor = new Redactor(sensitive);
    if (mappingError) mappingError = redactor.redact(mappingError);
    const storedInput = redactor.redact(input ?? null);
    await tx.insert(stepAttempts).values({
      runId: row.runId,
      stepId: row.stepId,
      attempt,
      generation: row.generation,
      status: mappingError ? 'failed' : 'running',
      jobId,
      input: storedInput,
      error: mappingError ?? null,
      finishedAt: mappingError ? sql`now()` : null,
    });
    await tx
      .update(steps)
      .set({
        status: mappingError ? 'failed' : 'running',
        attempts: attempt,
        input: storedInput,
        error: mappingError ?? null,
        startedAt: sql`coalesce(${steps.startedAt}, now())`,
        finishedAt: mappingError ? sql`now()` : null,
      })
      .where(and(eq(steps.runId, row.runId), eq(steps.stepId, row.stepId)));
    await scope.emit('step.started', row.stepId, { attempt, generation: row.generation });
    if (mappingError) {
      await scope.emit('step.failed', row.stepId, { attempt, error: mappingError });
      return { kind: 'inactive', reason: `input mapping failed: ${mappingError.message}` };
    }
    const idempotencyKey = stepJobId(row.runId, row.stepId, row.generation);
    if (spec.cacheTtlMs !== undefined && spec.kind !== 'checkpoint') {
      const cacheKey = cacheKeyOf(spec, input, spec.kind === 'agent' ? scope.run.agentVersions[spec.agent] : undefined);
      await tx
        .update(stepAttempts)
        .set({ cacheKey })
        .where(and(eq(stepAttempts.runId, row.runId), eq(stepAttempts.stepId, row.stepId), eq(stepAttempts.attempt, attempt)));
      const [hit] = await tx
        .select({ output: stepAttempts.output })
        .from(stepAttempts)
        .innerJoin(runs, eq(runs.id, stepAttempts.runId))
        .where(
          and(
            eq(stepAttempts.cacheKey, cacheKey),
            eq(stepAttempts.status, 'completed'),
            eq(runs.organizationId, scope.run.organizationId),
            sql`${stepAttempts.finishedAt} > now() - ${`${spec.cacheTtlMs} milliseconds`}::interval`,
          ),
        )
        .orderBy(desc(stepAttempts.finishedAt))
        .limit(1);
      if (hit) {
        await tx
          .update(stepAttempts)
          .set({ status: 'completed', output: hit.output, cacheHit: true, finishedAt: sql`now()` })
          .where(and(eq(stepAttempts.runId, row.runId), eq(stepAttempts.stepId, row.stepId), eq(stepAttempts.attempt, attempt)));
        await tx
          .update(steps)
          .set({ status: 'completed', output: hit.output, finishedAt: sql`now()` })
          .where(and(eq(steps.runId, row.runId), eq(steps.stepId, row.stepId)));
        row.status = 'completed';
        row.output = hit.output;
        await scope.emit('step.completed', row.stepId, { attempt, cacheHit: true });
        enqueueSteps(scope, await advance(scope, definition, rows));
        return { kind: 'cached' };
      }
    }
    const run = attemptRun(scope.run);
    rememberRun(data.runId, run); // its next fixed-input steps here need not read it (hot-path.ts)
    return { kind: 'run', attempt, input, spec, idempotencyKey, sensitive, run };
  });
}

/**
 * A step's input for its next attempt, with real values: the override of a retry decision, the
 * `foreach` list, or the `with:` mapping over the unsealed run input and the secrets it names (and,
 * for a compensation, `compensated`: the step it undoes).
 * @returns the input and the sensitive values it may contain.
 * @throws {MissingSecretError} when a named secret is not stored; {ValidationError} when the mapping fails.
 */
async function resolveInput(deps: EngineDeps, scope: RunScope, definition: Definition, spec: StepSpec, row: StepRow, rows: StepRow[]): Promise<{ input: unknown; sensitive: string[] }> {
  if (spec.kind === 'checkpoint') return { input: null, sensitive: [] };
  if (row.inputOverride !== null) return { input: row.inputOverride, sensitive: [] };
  const real = unsealRunInput(deps, scope.run);
  const undone = compensatedStep(definition, rows, spec.id);
  const exprScope: ExpressionScope = {
    ...scopeOf({ ...scope.run, input: real.input }, rows),
    ...(undone ? { compensated: { id: undone.stepId, output: undone.output, status: undone.status } } : {}),
  };
  if (spec.foreach !== undefined) return { input: await evaluateForeach(spec.foreach, exprScope), sensitive: real.values };
  const secrets = await secretsForMapping(deps, scope.tx, scope.run.organizationId, spec.with);
  const input = await evaluateMapping(spec.with, { ...exprScope, secrets });
  return { input, sensitive: [...real.values, ...Object.values(secrets)] };
}

/**
 * Cache key of a step execution (D5): SHA-256 over the agent (or inline code) and the input as
 * canonical JSON (object keys sorted), so equal inputs hit whatever their key order.
 */
function cacheKeyOf(spec: StepSpec, input: unknown, agentVersion: number | undefined): string {
  const who =
    spec.kind === 'agent'
      ? `agent:${spec.agent}@${agentVersion ?? 0}`
      : spec.kind === 'function-code'
        ? spec.module !== undefined ? `module:${spec.module}` : `code:${spec.code ?? ''}`
        : `${spec.kind}:${spec.id}`;
  return createHash('sha256').update(who).update('\0').update(canonicalJson(input)).digest('hex');
}

/** The list a fan-out step iterates over. @throws {ValidationError} when it is not a list. */
async function evaluateForeach(expression: string, scope: ExpressionScope): Promise<unknown[]> {
  const value = await evaluateMapping(`\${{ ${expression} }}`, scope);
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new ValidationError(`foreach must yield a list, got ${typeof value}`, { field: 'foreach' });
  return value as unknown[];
}

/** Fence: the attempt is the step's current one and both are still open. */
async function fence(scope: RunScope, data: StepRef, attempt: number): Promise<boolean> {
  const open = await scope.tx
    .select({ status: steps.status })
    .from(steps)
    .where(
      and(
        eq(steps.runId, data.runId),
        eq(steps.stepId, data.stepId),
        eq(steps.generation, data.generation),
        eq(steps.attempts, attempt),
        sql`${steps.status} in ('running', 'waiting')`,
      ),
    );
  return open.length === 1;
}

async function closeAttempt(
  scope: RunScope,
  data: StepRef,
  attempt: number,
  values: { status: AttemptStatus; output?: unknown; error?: SerializedError },
): Promise<void> {
  await scope.tx
    .update(stepAttempts)
    .set({ status: values.status, output: values.output ?? null, error: values.error ?? null, finishedAt: sql`now()` })
    .where(
      and(eq(stepAttempts.runId, data.runId), eq(stepAttempts.stepId, data.stepId), eq(stepAttempts.attempt, attempt)),
    );
}

/**
 * Record a step attempt's output and queue the successors that became ready.
 * @param extra - event data added to `step.completed` (e.g. the checkpoint decision).
 * @param run - the attempt's run, when the caller has it: enables the hot path (hot-path.ts).
 * @param deferred - the attempt's claim when it was deferred, and how long ago its agent started
 *   (`elapsedMs`): a claim still due is recorded with the completion, in one transaction. When
 *   that fence fails (the step or run changed since it was read) nothing is written, the claim's
 *   state becomes `refused` and the answer is `recorded: false`: the caller takes the general
 *   path (`beginStep` again).
 */
export async function completeStep(
  deps: EngineDeps,
  data: StepJobData,
  attempt: number,
  output: unknown,
  extra: Record<string, unknown> = {},
  run?: AttemptRun,
  deferred?: { claim: DeferredClaim; elapsedMs: number },
): Promise<StepRecord> {
  if (run) {
    const fast = await completeRunningStep(deps, data, attempt, output, extra, run, deferred?.claim, deferred?.elapsedMs);
    if (fast) return fast;
    if (deferred?.claim.state === 'refused') return { recorded: false, queued: [] };
  }
  return withRun(deps, data.runId, (scope) => completeStepIn(deps, scope, data, attempt, output, extra));
}

/**
 * `completeStep` inside an open run scope (the caller's transaction, e.g. a decision's).
 * @param fenced - the caller already read the step live at `attempt` under the run's lock in this
 *   transaction, so the fence's read is skipped.
 */
export async function completeStepIn(
  deps: EngineDeps,
  scope: RunScope,
  data: StepRef,
  attempt: number,
  output: unknown,
  extra: Record<string, unknown> = {},
  fenced = false,
): Promise<StepRecord> {
  if (!fenced && !(await fence(scope, data, attempt))) return record(scope, false);
  const at = await locate(deps, scope, data.stepId);
  if (!at) return record(scope, false);
  const json = output === undefined ? null : output;
  await closeAttempt(scope, data, attempt, { status: 'completed', output: json });
  await scope.tx
    .update(steps)
    .set({ status: 'completed', output: json, error: null, finishedAt: sql`now()` })
    .where(and(eq(steps.runId, data.runId), eq(steps.stepId, data.stepId)));
  at.row.status = 'completed';
  at.row.output = json;
  const durationMs = at.row.startedAt ? Date.now() - at.row.startedAt.getTime() : undefined;
  await scope.emit('step.completed', data.stepId, { attempt, durationMs, ...extra });
  return record(scope, true, await advance(scope, at.definition, at.rows));
}

/**
 * Record a failed attempt.
 * @param final - no attempt will follow: the step fails (`step.failed`); otherwise it waits for
 *   BullMQ's retry (`step.retrying`, with `retryDelayMs` when known).
 */
export async function failStep(
  deps: EngineDeps,
  data: StepJobData,
  attempt: number,
  error: SerializedError,
  final: boolean,
  retryDelayMs?: number,
): Promise<StepRecord> {
  return withRun(deps, data.runId, (scope) => failStepIn(deps, scope, data, attempt, error, final, retryDelayMs));
}

/** `failStep` inside an open run scope (the caller's transaction, e.g. a decision's). */
export async function failStepIn(deps: EngineDeps, scope: RunScope, data: StepRef, attempt: number, error: SerializedError, final: boolean, retryDelayMs?: number): Promise<StepRecord> {
  if (!(await fence(scope, data, attempt))) return record(scope, false);
  const attemptStatus = error.code === 'CANCELLED' ? 'cancelled' : error.code === 'TIMED_OUT' ? 'timed_out' : 'failed';
  await closeAttempt(scope, data, attempt, { status: attemptStatus, error });
  const where = and(eq(steps.runId, data.runId), eq(steps.stepId, data.stepId));
  if (!final) {
    await scope.tx.update(steps).set({ status: 'queued', error }).where(where);
    await scope.emit('step.retrying', data.stepId, { attempt, error, ...(retryDelayMs ? { retryDelayMs } : {}) });
    return record(scope, true);
  }
  await scope.tx.update(steps).set({ status: 'failed', error, finishedAt: sql`now()` }).where(where);
  await scope.emit('step.failed', data.stepId, { attempt, error });
  if (error.code === APPROVAL_ABORTED && scope.run.status === 'running') {
    // An abort: nothing new starts; once in-flight steps settle, compensations run (finalize).
    await scope.tx.update(runs).set({ status: 'cancelling', error }).where(eq(runs.id, data.runId));
    scope.run.status = 'cancelling';
    await scope.emit('run.cancelling', null, { error });
  }
  const at = await locate(deps, scope, data.stepId);
  if (!at || at.spec.onError !== 'continue') return record(scope, true);
  at.row.status = 'failed';
  return record(scope, true, await advance(scope, at.definition, at.rows));
}

/**
 * Record that a step's job failed without its processor reporting (e.g. BullMQ failed it after
 * it stalled too often). Used by the root job's repair pass.
 */
export async function failOrphanedStep(
  deps: EngineDeps,
  data: Pick<StepJobData, 'runId' | 'stepId' | 'generation'>,
  reason: string,
): Promise<void> {
  await withRun(deps, data.runId, async (scope) => {
    const error = engineFailure('JOB_FAILED', 'JobFailed', reason);
    const updated = await scope.tx
      .update(steps)
      .set({ status: 'failed', error, finishedAt: sql`now()` })
      .where(
        and(
          eq(steps.runId, data.runId),
          eq(steps.stepId, data.stepId),
          eq(steps.generation, data.generation),
          sql`${steps.status} in ('queued', 'running', 'waiting')`,
        ),
      )
      .returning({ attempts: steps.attempts });
    if (updated.length === 0) return;
    await scope.emit('step.failed', data.stepId, { attempt: updated[0]?.attempts ?? 0, error });
  });
}

/**
 * Re-run `targetStepId` and everything downstream of it (a checkpoint's `retry` decision): each
 * of those steps goes back to `pending` with its generation bumped, so its next job id is new
 * (`<run>.<step>.<generation+1>`) and a late result of the old generation is fenced out. Earlier
 * attempts, outputs of other steps and earlier approvals are kept. The calling step's attempt
 * is closed as `completed` with `output`.
 * @param inputOverride - input for the target's next attempt instead of its `with:` mapping.
 * @returns the steps queued now (normally the target), to add as children of the root.
 */
export async function rerunFrom(
  deps: EngineDeps,
  data: StepJobData,
  attempt: number,
  targetStepId: string,
  output: unknown,
  reason: string,
  inputOverride?: unknown,
): Promise<StepRecord> {
  return withRun(deps, data.runId, (scope) => rerunFromIn(deps, scope, data, attempt, targetStepId, output, reason, inputOverride));
}

/** `rerunFrom` inside an open run scope (the caller's transaction, e.g. a decision's). */
export async function rerunFromIn(deps: EngineDeps, scope: RunScope, data: StepRef, attempt: number, targetStepId: string, output: unknown, reason: string, inputOverride?: unknown): Promise<StepRecord> {
  if (!(await fence(scope, data, attempt))) return record(scope, false);
  const at = await locate(deps, scope, data.stepId);
  if (!at) return record(scope, false);
  await closeAttempt(scope, data, attempt, { status: 'completed', output });
  // The target's next attempt takes the decision's modified input instead of its mapping.
  await scope.tx
    .update(steps)
    .set({ inputOverride: inputOverride ?? null })
    .where(and(eq(steps.runId, data.runId), eq(steps.stepId, targetStepId)));
  const reset = new Set([targetStepId, ...descendantsOf(at.definition, targetStepId)]);
  for (const row of at.rows) {
    if (!reset.has(row.stepId)) continue;
    row.status = 'pending';
    row.generation += 1;
    await scope.tx
      .update(steps)
      .set({ status: 'pending', generation: row.generation, error: null, finishedAt: null })
      .where(and(eq(steps.runId, row.runId), eq(steps.stepId, row.stepId)));
    await scope.emit('step.retrying', row.stepId, { generation: row.generation, reason });
  }
  return record(scope, true, await advance(scope, at.definition, at.rows));
}

/** Longest `step.progress` message kept, in characters. */
const MAX_PROGRESS_MESSAGE_CHARS = 1000;

/**
 * Record a running attempt's progress as a `step.progress` event (`{attempt, fraction, message}`).
 * A report from an attempt that no longer owns the step is dropped.
 * @param fraction - 0..1.
 * @throws {ValidationError} (field `fraction`) when `fraction` is not a number in 0..1.
 */
export async function reportProgress(
  deps: EngineDeps,
  data: Pick<StepJobData, 'runId' | 'stepId' | 'generation'>,
  attempt: number,
  fraction: number,
  message?: string,
): Promise<void> {
  if (typeof fraction !== 'number' || !Number.isFinite(fraction) || fraction < 0 || fraction > 1) {
    throw new ValidationError('progress fraction must be a number between 0 and 1', { field: 'fraction' });
  }
  await withRun(deps, data.runId, async (scope) => {
    const [open] = await scope.tx
      .select({ status: steps.status })
      .from(steps)
      .where(and(eq(steps.runId, data.runId), eq(steps.stepId, data.stepId), eq(steps.generation, data.generation), eq(steps.attempts, attempt), eq(steps.status, 'running')));
    if (!open) return;
    const text = typeof message === 'string' ? message.slice(0, MAX_PROGRESS_MESSAGE_CHARS) : undefined;
    await scope.emit('step.progress', data.stepId, { attempt, fraction, ...(text === undefined ? {} : { message: text }) });
  });
}
