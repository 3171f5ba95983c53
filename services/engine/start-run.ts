/** Starting a run: Postgres first (run, steps, events), then its BullMQ flow. */
import { randomUUID } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import { UnavailableError, withinMs } from '../../lib/index.js';
import { runs, steps } from '../../db/index.js';
import { validateInput } from '../../definitions/index.js';
import { rootJobId } from '../../queues/index.js';
import { COMPENSATION_STATUS, advance, compensationSteps } from './advance.js';
import { findDefinition } from '../store/index.js';
import type { EngineDeps } from './deps.js';
import { enqueueWebhooks, openRunScope } from './run-scope.js';
import { sealRunInput } from './sensitive.js';
import { latestAgentVersions, newRunTraceCarrier } from '../store/index.js';

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

async function existingRun(deps: EngineDeps, organizationId: string, key: string): Promise<StartedRun | undefined> {
  const [row] = await deps.database.db
    .select({ id: runs.id, status: runs.status })
    .from(runs)
    .where(and(eq(runs.organizationId, organizationId), eq(runs.idempotencyKey, key)));
  return row ? { ...row, created: false } : undefined;
}

/**
 * Start a run of a definition version (the latest unless `version` is given).
 *
 * The run pins the latest version of every named agent it uses, and its input's `writeOnly` /
 * `format: password` fields are sealed (see `sensitive.ts`).
 *
 * In one transaction: the run (`queued`), its steps (`pending`), `run.queued`, and the initially
 * ready steps marked `queued`. Then the run's flow is created: root job (id = run id) in `runs`,
 * ready steps as its children.
 *
 * Redis faults (README, Durability › Faults of infrastructure): Redis is probed first, so while it is down
 * nothing is created and `UnavailableError` is thrown. If it fails after the commit, a top-level
 * run is kept and returned — the reconciler creates its flow once Redis answers, so it executes
 * exactly once — while a child run (`parent`) is deleted again and the error thrown, so that the
 * parent step's job, retried, starts it afresh.
 *
 * @throws {NotFoundError} unknown definition or version (field `definition` / `version`).
 * @throws {ValidationError} input does not match the definition's input schema (field `input.…`).
 * @throws {UnavailableError} Redis does not answer (nothing was created), or (child runs only)
 *   could not take the flow.
 */
export async function startRun(deps: EngineDeps, request: StartRunRequest): Promise<StartedRun> {
  const { db } = deps.database;
  if (request.idempotencyKey) {
    const found = await existingRun(deps, request.organizationId, request.idempotencyKey);
    if (found) return found;
  }
  await deps.queues.ensureAvailable(); // while Redis is down nothing is created (a known key still answers)
  const stored = await findDefinition(db, request.organizationId, request.definition, request.version);
  const definition = stored.spec;
  validateInput(definition, request.input);

  const runId = randomUUID();
  const sealed = sealRunInput(deps, runId, definition.input, request.input ?? {});
  const agentNames = [...new Set(definition.steps.flatMap((s) => (s.kind === 'agent' ? [s.agent] : [])))];
  const agentVersions = await latestAgentVersions(db, request.organizationId, agentNames);
  let created: { ready: Awaited<ReturnType<typeof advance>>; emitted: number[] };
  try {
    created = await db.transaction(async (tx) => {
      await tx.insert(runs).values({
        id: runId,
        organizationId: request.organizationId,
        definitionId: stored.id,
        definitionSlug: stored.slug,
        definitionVersion: stored.version,
        status: 'queued',
        input: sealed.input,
        sealedInput: sealed.sealedInput,
        agentVersions,
        webhookUrl: request.webhookUrl ?? null,
        idempotencyKey: request.idempotencyKey ?? null,
        createdBy: request.createdBy,
        parentRunId: request.parent?.runId ?? null,
        parentStepId: request.parent?.stepId ?? null,
        traceContext: await newRunTraceCarrier(tx, request.parent?.runId), // observability hook: the run's one trace
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
      await scope.emit('run.queued', null, { definition: stored.slug, version: stored.version });
      const ready = await advance(scope, definition, rows);
      await scope.flush();
      return { ready, emitted: scope.emitted };
    });
  } catch (err) {
    // Two requests raced with the same idempotency key: the loser returns the winner's run.
    // drizzle wraps driver errors (DrizzleQueryError); the Postgres code is on the cause.
    const code = (err as { code?: string }).code ?? ((err as { cause?: { code?: string } }).cause?.code);
    if (request.idempotencyKey && code === '23505') {
      const found = await existingRun(deps, request.organizationId, request.idempotencyKey);
      if (found) return found;
    }
    throw err;
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
  await enqueueWebhooks(deps, runId, created.emitted); // webhooks: subscriptions may want it without a webhookUrl
  return { id: runId, status: 'queued', created: true };
}
