/**
 * Execution plans of definitions, for dry runs (`POST /v1/runs?dryRun=true`): what a run would
 * do, computed from the definition alone. Nothing is written to Postgres or Redis.
 */
import { topologicalOrder, validateInput, type Approver, type CheckpointDecision, type Definition } from '../../definitions/index.js';
import { findDefinition } from '../store/index.js';
import type { EngineDeps } from './deps.js';

/** A step of a plan. */
export interface PlannedStep {
  id: string;
  /** Step type: an agent type, or `checkpoint`. */
  type: string;
  /** The named agent (`null` for checkpoints, inline functions and orchestrator steps). */
  agent: string | null;
  needs: string[];
  /** The step's condition (bare JSONata), when it has one: the step is skipped when it is falsy. */
  when?: string;
}

/** A checkpoint of a plan: where the run will wait for people. */
export interface PlannedCheckpoint {
  id: string;
  /** The prompt template (`${{ }}` expressions are rendered only when the run gets there). */
  prompt: string;
  decisions: CheckpointDecision[];
  /** Deadline for a decision, in milliseconds after the checkpoint opens. */
  timeoutMs: number;
  /** What happens at the deadline. */
  onTimeout: string;
  /** Empty: anyone allowed to approve in the organization. */
  approvers: Approver[];
  /** Distinct approvers needed to continue. */
  required: number;
  /** Step re-run by a `retry` decision, if the checkpoint offers one. */
  retryStep?: string;
}

/** What a run of a definition would execute. */
export interface RunPlan {
  /** Step ids in a topological order (a step after all of its `needs`, otherwise file order). */
  order: string[];
  /**
   * Steps that may run in parallel, by level: a step without `needs` is in the first group; any
   * other step is one level after the deepest of its `needs`. Within a group, in `order`.
   */
  groups: string[][];
  checkpoints: PlannedCheckpoint[];
  /** Every step, in file order. */
  steps: PlannedStep[];
}

/**
 * The plan of a definition (pure; no I/O).
 * @throws {DefinitionError} when the steps cannot be ordered (a cycle or unknown `needs`; never
 *   the case for a definition produced by the loader).
 */
export function planDefinition(definition: Pick<Definition, 'steps'>): RunPlan {
  const order = topologicalOrder(definition);
  const byId = new Map(definition.steps.map((s) => [s.id, s]));
  const level = new Map<string, number>();
  for (const id of order) {
    const needs = byId.get(id)?.needs ?? [];
    level.set(id, 1 + Math.max(0, ...needs.map((n) => level.get(n) ?? 0)));
  }
  const groups: string[][] = [];
  for (const id of order) {
    const index = (level.get(id) ?? 1) - 1;
    for (let i = groups.length; i <= index; i += 1) groups.push([]);
    groups[index]?.push(id);
  }
  const checkpoints: PlannedCheckpoint[] = [];
  for (const s of definition.steps) {
    if (s.kind !== 'checkpoint') continue;
    checkpoints.push({
      id: s.id,
      prompt: s.prompt,
      decisions: [...s.decisions],
      timeoutMs: s.timeoutMs,
      onTimeout: s.onTimeout,
      approvers: [...s.approvers],
      required: s.required,
      ...(s.retryStep === undefined ? {} : { retryStep: s.retryStep }),
    });
  }
  return {
    order,
    groups,
    checkpoints,
    steps: definition.steps.map((s) => ({
      id: s.id,
      type: s.type,
      agent: s.kind === 'agent' ? s.agent : null,
      needs: [...s.needs],
      ...(s.when === undefined ? {} : { when: s.when }),
    })),
  };
}

/** A dry-run request: the same fields a real start validates. */
export interface DryRunRequest {
  organizationId: string;
  definition: string;
  /** The latest version when absent. */
  version?: number;
  input: unknown;
}

/** The answer to a dry run. */
export interface DryRunResult {
  dryRun: true;
  definition: { slug: string; version: number };
  plan: RunPlan;
}

/**
 * Validate a run request exactly as `startRun` does (definition and version exist, input
 * matches the input schema) and return the plan, creating nothing: no run row, no event, no job.
 * @throws {NotFoundError} unknown definition or version (field `definition` / `version`).
 * @throws {ValidationError} input does not match the definition's input schema (field `input.…`).
 */
export async function dryRun(deps: EngineDeps, request: DryRunRequest): Promise<DryRunResult> {
  const stored = await findDefinition(deps.database.db, request.organizationId, request.definition, request.version);
  validateInput(stored.spec, request.input);
  return { dryRun: true, definition: { slug: stored.slug, version: stored.version }, plan: planDefinition(stored.spec) };
}
