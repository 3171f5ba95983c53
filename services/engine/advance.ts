/**
 * Readiness: which pending steps may start now. Always called inside `withRun` (the run's row
 * lock), in the same transaction as the state change that made steps ready.
 */
import { and, eq, sql } from 'drizzle-orm';
import { steps } from '../../db/index.js';
import { evaluateCondition, type Definition, type ExpressionScope, type StepSpec } from '../../definitions/index.js';
import type { StepJobSpec } from '../../queues/index.js';
import type { RunScope } from './run-scope.js';
import { isStepFinished, isStepLive } from './statuses.js';

export type StepRow = typeof steps.$inferSelect;

/**
 * Status of a step that only runs as a compensation (D9): named by another step's `compensate:`,
 * it is left out of the DAG and queued only when the run is aborted.
 */
export const COMPENSATION_STATUS = 'compensation' as const;

/** Ids of the steps that are compensations of other steps. */
export function compensationSteps(definition: Definition): Set<string> {
  return new Set(definition.steps.flatMap((s) => (s.compensate ? [s.compensate] : [])));
}

/**
 * The step a compensation undoes (`compensated` in its expressions): of the completed steps whose
 * `compensate:` names `compensationId`, the most recently finished — the one whose compensation
 * finalize queues first (reverse completion order).
 * @returns its row, or `undefined` when `compensationId` compensates no completed step.
 */
export function compensatedStep(definition: Definition, rows: readonly StepRow[], compensationId: string): StepRow | undefined {
  const byId = new Map(rows.map((r) => [r.stepId, r]));
  return definition.steps
    .filter((s) => s.compensate === compensationId)
    .flatMap((s) => {
      const row = byId.get(s.id);
      return row?.status === 'completed' ? [row] : [];
    })
    .sort((a, b) => (b.finishedAt?.getTime() ?? 0) - (a.finishedAt?.getTime() ?? 0))[0];
}

/** The job options of a step generation, from its definition. */
export function jobSpecFor(spec: StepSpec, generation: number): StepJobSpec {
  return {
    stepId: spec.id,
    type: spec.type,
    generation,
    attempts: spec.retry.attempts,
    backoffMs: spec.retry.backoffMs,
    maxDelayMs: spec.retry.maxDelayMs,
  };
}

/** The expression scope of a run: its input and every step's output and status. */
export function scopeOf(run: { id: string; definitionSlug: string; input: unknown }, rows: StepRow[]): ExpressionScope {
  return {
    input: run.input,
    steps: Object.fromEntries(rows.map((r) => [r.stepId, { output: r.output, status: r.status }])),
    run: { id: run.id, definition: run.definitionSlug },
  };
}

/** Load a run's step rows (inside the run's transaction). */
export async function loadSteps(scope: RunScope): Promise<StepRow[]> {
  return scope.tx.select().from(steps).where(eq(steps.runId, scope.run.id));
}

/**
 * Whether a finished predecessor lets its dependents run: completed, or failed with
 * `onError: continue`.
 */
function satisfies(row: StepRow, spec: StepSpec | undefined): boolean {
  return row.status === 'completed' || (row.status === 'failed' && spec?.onError === 'continue');
}

/**
 * Queue every pending step whose needs are all satisfied, and skip those whose condition is
 * false or whose needs were skipped. Repeats until nothing changes (skips cascade).
 * Emits `step.queued` / `step.skipped`. A run that is not queued or running queues nothing.
 * @param rows - the run's step rows; updated in place.
 * @returns the job specs of the steps it queued (the caller adds their jobs after commit).
 */
export async function advance(scope: RunScope, definition: Definition, rows: StepRow[]): Promise<StepJobSpec[]> {
  if (scope.run.status !== 'queued' && scope.run.status !== 'running') return [];
  const byId = new Map(rows.map((r) => [r.stepId, r]));
  const specs = new Map(definition.steps.map((s) => [s.id, s]));
  const queued: StepJobSpec[] = [];
  let changed = true;
  while (changed) {
    changed = false;
    for (const spec of definition.steps) {
      const row = byId.get(spec.id);
      if (!row || row.status !== 'pending') continue;
      const needs = spec.needs.map((id) => byId.get(id));
      if (needs.some((n) => !n || !isStepFinished(n.status))) continue;
      const finishedNeeds = needs as StepRow[];
      if (spec.ifSkipped === 'skip' && finishedNeeds.some((n) => n.status === 'skipped')) {
        await setStatus(scope, row, 'skipped', { reason: 'a needed step was skipped' });
        changed = true;
        continue;
      }
      const allowSkipped = spec.ifSkipped === 'run';
      if (!finishedNeeds.every((n) => satisfies(n, specs.get(n.stepId)) || (allowSkipped && n.status === 'skipped'))) continue;
      if (spec.when && !(await evaluateCondition(spec.when, scopeOf(scope.run, rows)))) {
        await setStatus(scope, row, 'skipped', { reason: 'condition is false', when: spec.when });
        changed = true;
        continue;
      }
      await setStatus(scope, row, 'queued', { type: spec.type, agent: row.agent, generation: row.generation });
      queued.push(jobSpecFor(spec, row.generation));
      changed = true;
    }
  }
  return queued;
}

async function setStatus(scope: RunScope, row: StepRow, status: 'queued' | 'skipped', data: Record<string, unknown>): Promise<void> {
  const now = sql`now()`;
  await scope.tx
    .update(steps)
    .set(status === 'queued' ? { status, queuedAt: now } : { status, finishedAt: now })
    .where(and(eq(steps.runId, row.runId), eq(steps.stepId, row.stepId)));
  row.status = status;
  await scope.emit(status === 'queued' ? 'step.queued' : 'step.skipped', row.stepId, data);
}

/** Job specs of steps that are queued, running or waiting: the jobs that must exist. */
export function liveJobSpecs(definition: Definition, rows: StepRow[]): StepJobSpec[] {
  const specs = new Map(definition.steps.map((s) => [s.id, s]));
  return rows.flatMap((r) => {
    const spec = specs.get(r.stepId);
    return spec && isStepLive(r.status) ? [jobSpecFor(spec, r.generation)] : [];
  });
}
