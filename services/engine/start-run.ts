/** Starting a run: Postgres first (run, steps, events), then its BullMQ flow. */
import { randomUUID } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import { UnavailableError, withinMs } from '../../lib/index.js';
import { runs, steps } from '../../db/index.js';
import { validateInput } from '../../definitions/index.js';
import { rootJobId, type StepJobSpec } from '../../queues/index.js';
import { COMPENSATION_STATUS, advance, compensationSteps } from './advance.js';
import { findDefinition, findDefinitionCached, forgetResolvedDefinition } from '../store/index.js';
import type { EngineDeps } from './deps.js';
import { enqueueWebhooks, openRunScope } from './run-scope.js';
import { insertRunInOneTrip } from './start-run-sql.js';
import { primeRunDestination } from './webhooks.js';
import { sealRunInput } from './sensitive.js';
import { latestAgentVersions, newRunTraceCarrier } from '../store/index.js';
import { concurrencyGroupOf, mustWait } from './concurrency.js';
import { assertRunInput, assertSameRequest, requestFingerprint } from './run-request.js';

/** A request to start a run (already authenticated and shape-checked by the caller). */
export interface StartRunRequest {
  organizationId: string;
  /** Identity that starts the run (API key subject). */
  createdBy: string;
  definition: string;
  version?: number;
  input: unknown;
  webhookUrl?: string;
  /** The same key (per organization) returns the same run instead of starting another. */
  idempotencyKey?: string;
  /** For a sub-orchestration: the parent run and step, and the step job the child root hangs under. */
  parent?: { runId: string; stepId: string; jobId: string; queue: string };
}

export interface StartedRun {
  id: string;
  status: string;
  /** False when an earlier run with the same idempotency key was returned. */
  created: boolean;
}

/** How long a top-level run's flow may take to reach Redis before the run is left to the reconciler, in milliseconds. */
const FLOW_ADD_TIMEOUT_MS = 1000;

/** The run started under `key`, if any. @throws {IdempotencyKeyReusedError} for another request. */
async function existingRun(deps: EngineDeps, organizationId: string, key: string, fingerprint: string | null): Promise<StartedRun | undefined> {
  const [row] = await deps.database.db
    .select({ id: runs.id, status: runs.status, fingerprint: runs.requestFingerprint })
    .from(runs)
    .where(and(eq(runs.organizationId, organizationId), eq(runs.idempotencyKey, key)));
  if (!row) return undefined;
  assertSameRequest(row.fingerprint, fingerprint, row.id);
  return { id: row.id, status: row.status, created: false };
}

/**
 * Start a run of a definition version (the latest unless `version` is given).
 *
 * The run pins the latest version of every named agent it uses, and its input's `writeOnly` /
 * `format: password` fields are sealed (see `sensitive.ts`).
 *
 * In one transaction: the run (`queued`), its steps (`pending`), `run.queued`, and the initially
 * ready steps marked `queued` — one round trip (`start-run-sql.ts`) unless a step without needs
 * has a `when:` or the definition has a `concurrency:` limit, with the definition from a
 * per-process cache. Under a definition's `concurrency:` limit a run whose group is full is
 * `throttled` instead (`run.throttled`, no steps queued, no flow; `concurrency.ts`). Then the
 * run's flow is created: root job (id = run id) in `runs`, ready steps as its children.
 *
 * Redis faults (README, Durability › Faults of infrastructure): Redis is probed first, so while it is down
 * nothing is created and `UnavailableError` is thrown. If it fails after the commit, a top-level
 * run is kept and returned — the reconciler creates its flow once Redis answers, so it executes
 * exactly once — while a child run (`parent`) is deleted again and the error thrown, so that the
 * parent step's job, retried, starts it afresh.
 *
 * @throws {NotFoundError} unknown definition or version (field `definition` / `version`).
 * @throws {ValidationError} input does not match the definition's input schema (field `input.…`).
 * @throws {ValidationError} the definition's `concurrency.key` expression fails on the input.
 * @throws {UnavailableError} Redis does not answer (nothing was created), or (child runs only)
 *   could not take the flow.
 * @throws {InputTooLargeError} / {ValidationError} the input is too large, unclean or too deep (`run-request.ts`).
 * @throws {IdempotencyKeyReusedError} the idempotency key started a run of another request.
 */
export async function startRun(deps: EngineDeps, request: StartRunRequest): Promise<StartedRun> {
  const { db } = deps.database;
  assertRunInput(deps.config, request.input);
  // A child run's key is its parent step's job id; its input is not compared (it may be re-derived).
  const fingerprint = request.idempotencyKey && !request.parent ? requestFingerprint(deps.config, request) : null;
  const runId = randomUUID();
  const fast = await startInOneTrip(deps, request, runId, fingerprint);
  if (fast?.kind === 'existing') return fast.run;
  let created: { ready: StepJobSpec[]; emitted: number[] };
  if (fast) created = fast;
  else {
    const general = await startInTransaction(deps, request, runId, fingerprint);
    if ('existing' in general) return general.existing;
    if (general.throttled) {
      await enqueueWebhooks(deps, runId, general.emitted);
      return { id: runId, status: 'throttled', created: true };
    }
    created = general;
  }

  try {
    const parent = request.parent ? { id: request.parent.jobId, queue: request.parent.queue } : undefined;
    const adding = deps.queues.addRunFlow(rootJobId(runId, 1), runId, created.ready, parent);
    await (parent ? adding : withinMs(adding, FLOW_ADD_TIMEOUT_MS, "Redis did not take the run's flow"));
  } catch (err) {
    if (!request.parent) {
      // Committed: the reconciler creates the flow (idempotent ids: once, even if this add lands late).
      deps.logger.warn({ err, runId }, 'run accepted, but Redis did not take its flow; the reconciler will');
      return { id: runId, status: 'queued', created: true };
    }
    deps.logger.error({ err, runId }, 'could not create the run flow; removing the run');
    await db.delete(runs).where(eq(runs.id, runId));
    throw new UnavailableError('the queue is unavailable; the run was not started, retry later', { cause: err });
  }
  primeRunDestination(deps, runId, { organizationId: request.organizationId, webhookUrl: request.webhookUrl ?? null });
  await enqueueWebhooks(deps, runId, created.emitted); // webhooks: subscriptions may want it without a webhookUrl
  return { id: runId, status: 'queued', created: true };
}

/**
 * The start in one round trip (`start-run-sql.ts`), with the definition from the per-process
 * cache. An idempotency key the organization already used returns that run even when the
 * request is otherwise refused (unknown definition, invalid input), as the general path does.
 * @returns `undefined` when the definition needs the general transaction.
 */
async function startInOneTrip(
  deps: EngineDeps,
  request: StartRunRequest,
  runId: string,
  fingerprint: string | null,
): Promise<{ kind: 'created'; ready: StepJobSpec[]; emitted: number[] } | { kind: 'existing'; run: StartedRun } | undefined> {
  const { db } = deps.database;
  for (let pass = 0; pass < 2; pass += 1) {
    let stored: Awaited<ReturnType<typeof findDefinitionCached>>;
    try {
      stored = await findDefinitionCached(db, request.organizationId, request.definition, request.version);
      validateInput(stored.spec, request.input);
    } catch (err) {
      const found = request.idempotencyKey ? await existingRun(deps, request.organizationId, request.idempotencyKey, fingerprint) : undefined;
      if (found) return { kind: 'existing', run: found };
      throw err;
    }
    if (stored.spec.concurrency) return undefined; // slots are decided under the group lock (concurrency.ts)
    try {
      await deps.queues.ensureAvailable(); // while Redis is down nothing is created (a known key still answers)
    } catch (err) {
      const found = request.idempotencyKey ? await existingRun(deps, request.organizationId, request.idempotencyKey, fingerprint) : undefined;
      if (found) return { kind: 'existing', run: found };
      throw err;
    }
    const sealed = sealRunInput(deps, runId, stored.spec.input, request.input ?? {});
    const outcome = await insertRunInOneTrip(deps, {
      runId,
      organizationId: request.organizationId,
      createdBy: request.createdBy,
      definition: stored,
      latest: request.version === undefined,
      input: sealed.input,
      sealedInput: sealed.sealedInput,
      webhookUrl: request.webhookUrl ?? null,
      idempotencyKey: request.idempotencyKey ?? null,
      requestFingerprint: fingerprint,
      parent: request.parent ? { runId: request.parent.runId, stepId: request.parent.stepId } : null,
      traceContext: await newRunTraceCarrier(db, request.parent?.runId), // observability hook: the run's one trace
    });
    if (!outcome) return undefined;
    if (outcome.kind === 'existing') {
      // The key's run: compare its request (422 for another), as the general path does.
      const found = await existingRun(deps, request.organizationId, request.idempotencyKey ?? '', fingerprint);
      return { kind: 'existing', run: found ?? { id: outcome.id, status: outcome.status, created: false } };
    }
    if (outcome.kind === 'created') return outcome;
    forgetResolvedDefinition(request.organizationId, request.definition); // stale: a newer version exists
  }
  return undefined;
}

/** The general start: one transaction through `advance`, for definitions the one-trip start does not cover. */
async function startInTransaction(
  deps: EngineDeps,
  request: StartRunRequest,
  runId: string,
  fingerprint: string | null,
): Promise<{ ready: StepJobSpec[]; emitted: number[]; throttled: boolean } | { existing: StartedRun }> {
  const { db } = deps.database;
  if (request.idempotencyKey) {
    const found = await existingRun(deps, request.organizationId, request.idempotencyKey, fingerprint);
    if (found) return { existing: found };
  }
  await deps.queues.ensureAvailable(); // while Redis is down nothing is created (a known key still answers)
  const stored = await findDefinition(db, request.organizationId, request.definition, request.version);
  const definition = stored.spec;
  validateInput(definition, request.input);

  const sealed = sealRunInput(deps, runId, definition.input, request.input ?? {});
  const agentNames = [...new Set(definition.steps.flatMap((s) => (s.kind === 'agent' ? [s.agent] : [])))];
  const agentVersions = await latestAgentVersions(db, request.organizationId, agentNames);
  const group = await concurrencyGroupOf(definition, sealed.input, runId);
  let created: { ready: StepJobSpec[]; emitted: number[]; throttled: boolean };
  try {
    created = await db.transaction(async (tx) => {
      // The definition's concurrency limit: a full group (or one with older runs waiting) holds the run back.
      const throttled = group ? await mustWait(tx, request.organizationId, stored.slug, group, request.parent !== undefined) : false;
      await tx.insert(runs).values({
        id: runId,
        organizationId: request.organizationId,
        definitionId: stored.id,
        definitionSlug: stored.slug,
        definitionVersion: stored.version,
        status: throttled ? 'throttled' : 'queued',
        input: sealed.input,
        sealedInput: sealed.sealedInput,
        agentVersions,
        webhookUrl: request.webhookUrl ?? null,
        idempotencyKey: request.idempotencyKey ?? null,
        requestFingerprint: fingerprint,
        createdBy: request.createdBy,
        parentRunId: request.parent?.runId ?? null,
        parentStepId: request.parent?.stepId ?? null,
        traceContext: await newRunTraceCarrier(tx, request.parent?.runId), // observability hook: the run's one trace
        concurrencyKey: group?.key ?? null,
        concurrencyLimit: group?.limit ?? null,
      });
      const compensations = compensationSteps(definition);
      const rows = await tx
        .insert(steps)
        .values(
          definition.steps.map((s) => ({
            runId,
            stepId: s.id,
            type: s.type,
            agent: s.kind === 'agent' ? s.agent : null,
            status: compensations.has(s.id) ? COMPENSATION_STATUS : ('pending' as const),
            needs: s.needs,
          })),
        )
        .returning();
      const scope = await openRunScope(tx, runId);
      if (throttled) {
        // No jobs until a slot frees (concurrency.ts admits it, `run.queued`).
        await scope.emit('run.throttled', null, { definition: stored.slug, version: stored.version, concurrency: group });
        await scope.flush();
        return { ready: [], emitted: scope.emitted, throttled };
      }
      await scope.emit('run.queued', null, { definition: stored.slug, version: stored.version });
      const ready = await advance(scope, definition, rows);
      await scope.flush();
      return { ready, emitted: scope.emitted, throttled };
    });
  } catch (err) {
    // Two requests raced with the same idempotency key: the loser returns the winner's run.
    // drizzle wraps driver errors (DrizzleQueryError); the Postgres code is on the cause.
    const code = (err as { code?: string }).code ?? ((err as { cause?: { code?: string } }).cause?.code);
    if (request.idempotencyKey && code === '23505') {
      const found = await existingRun(deps, request.organizationId, request.idempotencyKey, fingerprint);
      if (found) return { existing: found };
    }
    throw err;
  }
  return created;
}
