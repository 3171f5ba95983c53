/**
 * Execution plans of definitions, for dry runs (`POST /v1/runs?dryRun=true`, `baton run
 * --dry-run`): what a run would do, computed from the definition and the run input alone.
 * Nothing is written to Postgres or Redis.
 *
 * Besides the DAG (order, parallel groups, checkpoints) a plan enumerates the **jobs** a run would
 * enqueue, as far as the input alone tells: one job per step; for a fan-out (`foreach`) whose
 * expression reads only `input`, one job per item (with the item); for an orchestrator step or
 * agent whose child input reads only `input`, the child run(s) with their own plans (nested up to
 * {@link MAX_PLAN_DEPTH}). What depends on step outputs (or on the run's id) is marked
 * `known: false` with the steps it waits for (`dependsOn`); so is a `when` condition.
 */
import { and, desc, eq } from 'drizzle-orm';
import { NotFoundError, ValidationError } from '../../lib/index.js';
import { agents, definitions, type Db } from '../../db/index.js';
import {
  evaluateExpression,
  evaluateMapping,
  parseTemplate,
  referencedSteps,
  topologicalOrder,
  validateInput,
  type Approver,
  type CheckpointDecision,
  type Definition,
  type ExpressionScope,
  type StepSpec,
} from '../../definitions/index.js';

/** Child plans nest at most this deep (a definition may start itself). */
export const MAX_PLAN_DEPTH = 4;
/** Fan-out items listed per step at most (the count is always exact). */
export const MAX_LISTED_ITEMS = 200;

/** Something the input alone cannot tell. */
export interface Unknown {
  known: false;
  /** Steps whose outputs it reads (empty when it reads the run's id). */
  dependsOn: string[];
  /** The expression it comes from (bare JSONata). */
  expression: string;
}

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
  /** Whether the step runs: `true`/`false` when `when` reads only the input, else unknown. */
  runs: boolean | Unknown;
  /** For a fan-out: the items when the input tells them, else unknown. */
  items?: { known: true; count: number; values: unknown[] } | Unknown;
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

/** A child run an orchestrator step would start. */
export interface PlannedChild {
  definition: { slug: string; version: number };
  /** The child's input when the input alone tells it, else unknown. */
  input: unknown;
  /** The child's plan (its own jobs are unknown where its input is). */
  plan: RunPlan;
}

/** One job the run would enqueue. */
export interface PlannedJob {
  /** `<step>` or, for a fan-out item, `<step>[<index>]` (`<step>[*]` when the items are unknown). */
  id: string;
  stepId: string;
  kind: 'step' | 'item' | 'checkpoint' | 'child-run';
  /** Whether the input alone determines this job (items and child runs; `false` also when `when` is unknown). */
  known: boolean;
  /** Steps it waits for before it can be enumerated (unknown jobs). */
  dependsOn?: string[];
  index?: number;
  item?: unknown;
  /** For `child-run` jobs. */
  child?: PlannedChild | Unknown;
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
  /** The jobs, in `order` (items by index). */
  jobs: PlannedJob[];
}

/** Where child definitions and orchestrator agents are looked up (absent: child plans are unknown). */
export interface PlanLookup {
  definition(slug: string, version?: number): Promise<{ slug: string; version: number; spec: Definition }>;
  /** An orchestrator agent's child definition and config (`undefined` when the agent is not one). */
  orchestratorAgent(name: string): Promise<{ definition: string; version?: number; foreach?: string; input?: unknown } | undefined>;
}

function dependencyOf(expression: string): Unknown | undefined {
  const steps = referencedSteps(expression);
  if (steps.length > 0) return { known: false, dependsOn: steps, expression };
  if (/(?<![A-Za-z0-9_$.])run\.id\b/.test(expression)) return { known: false, dependsOn: [], expression };
  return undefined;
}

/** The first dependency among a mapping's expressions, if any. */
function mappingDependency(mapping: unknown): Unknown | undefined {
  const texts: string[] = [];
  const visit = (value: unknown): void => {
    if (typeof value === 'string') texts.push(value);
    else if (Array.isArray(value)) value.forEach(visit);
    else if (value !== null && typeof value === 'object') Object.values(value).forEach(visit);
  };
  visit(mapping);
  const dependsOn = new Set<string>();
  let first: string | undefined;
  for (const text of texts) {
    let parts;
    try {
      parts = parseTemplate(text);
    } catch {
      continue;
    }
    for (const part of parts) {
      if (part.kind !== 'expression') continue;
      const dependency = dependencyOf(part.expression);
      if (!dependency) continue;
      first ??= part.expression;
      for (const id of dependency.dependsOn) dependsOn.add(id);
    }
  }
  return first === undefined ? undefined : { known: false, dependsOn: [...dependsOn], expression: first };
}

function levels(definition: Pick<Definition, 'steps'>, order: readonly string[]): string[][] {
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
  return groups;
}

function checkpointsOf(definition: Pick<Definition, 'steps'>): PlannedCheckpoint[] {
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
  return checkpoints;
}

/**
 * The structure of a definition's plan, without input (pure; no I/O): every `runs`/`items` is
 * unknown where it has an expression, and there is one job per step (`<step>[*]` for fan-outs).
 * @throws {DefinitionError} when the steps cannot be ordered (never for a loaded definition).
 */
export function planDefinition(definition: Pick<Definition, 'steps'>): RunPlan {
  const order = topologicalOrder(definition);
  const byId = new Map(definition.steps.map((s) => [s.id, s]));
  const steps = definition.steps.map((s): PlannedStep => ({
    id: s.id,
    type: s.type,
    agent: s.kind === 'agent' ? s.agent : null,
    needs: [...s.needs],
    ...(s.when === undefined ? {} : { when: s.when }),
    runs: s.when === undefined ? true : { known: false, dependsOn: referencedSteps(s.when), expression: s.when },
    ...(s.foreach === undefined ? {} : { items: { known: false, dependsOn: referencedSteps(s.foreach), expression: s.foreach } }),
  }));
  const jobs = order.flatMap((id): PlannedJob[] => {
    const s = byId.get(id);
    if (!s) return [];
    if (s.kind === 'checkpoint') return [{ id, stepId: id, kind: 'checkpoint', known: s.when === undefined }];
    if (s.foreach !== undefined) return [{ id: `${id}[*]`, stepId: id, kind: 'item', known: false, dependsOn: referencedSteps(s.foreach) }];
    return [{ id, stepId: id, kind: 'step', known: s.when === undefined }];
  });
  return { order, groups: levels(definition, order), checkpoints: checkpointsOf(definition), steps, jobs };
}

/** The run scope of a dry run: the input, no step outputs, no run id. */
function dryScope(definition: Pick<Definition, 'slug' | 'version'>, input: unknown): ExpressionScope {
  return { input, steps: {}, run: { id: '', definition: `${definition.slug}@${definition.version}` } };
}

async function evaluateItems(expression: string, scope: ExpressionScope): Promise<unknown[]> {
  const value = await evaluateExpression(expression, scope);
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ValidationError(`foreach must yield a list, got ${typeof value}`, { field: 'foreach' });
  return value as unknown[];
}

/**
 * The plan of a definition for a given input: {@link planDefinition} with what the input tells
 * filled in (conditions, fan-out items, child runs). `lookup` resolves child definitions and
 * orchestrator agents; without it child runs are listed without plans.
 * @throws {ValidationError} when an input-only expression fails (e.g. a `foreach` that yields no list).
 */
export async function planRun(definition: Definition, input: unknown, lookup?: PlanLookup, depth = 0): Promise<RunPlan> {
  const base = planDefinition(definition);
  const scope = dryScope(definition, input);
  const byId = new Map(definition.steps.map((s) => [s.id, s]));
  const steps: PlannedStep[] = [];
  for (const planned of base.steps) {
    const spec = byId.get(planned.id);
    if (!spec) continue;
    const step: PlannedStep = { ...planned };
    if (spec.when !== undefined && !dependencyOf(spec.when)) {
      step.runs = Boolean(await evaluateExpression(spec.when, scope));
    }
    if (spec.foreach !== undefined && !dependencyOf(spec.foreach)) {
      const values = await evaluateItems(spec.foreach, scope);
      step.items = { known: true, count: values.length, values: values.slice(0, MAX_LISTED_ITEMS) };
    }
    steps.push(step);
  }
  const plannedById = new Map(steps.map((s) => [s.id, s]));
  const jobs: PlannedJob[] = [];
  for (const id of base.order) {
    const spec = byId.get(id);
    const planned = plannedById.get(id);
    if (!spec || !planned) continue;
    const runsKnown = planned.runs === true || planned.runs === false;
    if (planned.runs === false) continue;
    if (spec.kind === 'checkpoint') {
      jobs.push({ id, stepId: id, kind: 'checkpoint', known: runsKnown });
      continue;
    }
    if (planned.items !== undefined) {
      if (planned.items.known) {
        planned.items.values.forEach((item, index) => jobs.push({ id: `${id}[${index}]`, stepId: id, kind: 'item', known: runsKnown, index, item }));
      } else {
        jobs.push({ id: `${id}[*]`, stepId: id, kind: 'item', known: false, dependsOn: planned.items.dependsOn });
      }
      continue;
    }
    const children = await childJobs(spec, planned, scope, runsKnown, lookup, depth);
    jobs.push(...(children ?? [{ id, stepId: id, kind: 'step' as const, known: runsKnown }]));
  }
  return { ...base, steps, jobs };
}

/** The child-run jobs of an orchestrator step or agent; `undefined` when the step starts none. */
async function childJobs(
  spec: StepSpec,
  planned: PlannedStep,
  scope: ExpressionScope,
  runsKnown: boolean,
  lookup: PlanLookup | undefined,
  depth: number,
): Promise<PlannedJob[] | undefined> {
  let target: { slug: string; version?: number; foreach?: string; input?: unknown } | undefined;
  if (spec.kind === 'orchestrator') target = spec.run;
  else if (spec.kind === 'agent' && spec.type === 'orchestrator' && lookup) {
    const agent = await lookup.orchestratorAgent(spec.agent);
    if (agent) target = { slug: agent.definition, ...agent };
  }
  if (!target) return undefined;
  const id = planned.id;
  const dependency = mappingDependency(spec.with);
  if (dependency) return [{ id, stepId: id, kind: 'child-run', known: false, dependsOn: dependency.dependsOn, child: dependency }];
  const stepInput = await evaluateMapping(spec.with, scope);
  // An orchestrator agent maps its step input: `foreach` (JSONata over it) gives one child per item.
  let inputs: unknown[] = [stepInput];
  if (target.foreach !== undefined) {
    // As the subrun implementation does: `$` is the step input.
    const items = await evaluateExpression(target.foreach, stepInput as ExpressionScope);
    inputs = Array.isArray(items) ? items : [];
  }
  const jobs: PlannedJob[] = [];
  for (const [index, item] of inputs.entries()) {
    const childInput =
      target.input === undefined
        ? item
        : await evaluateMapping(target.input, { ...scope, input: stepInput, ...(target.foreach === undefined ? {} : { item, index }) });
    const jobId = target.foreach === undefined ? id : `${id}[${index}]`;
    if (!lookup || depth >= MAX_PLAN_DEPTH) {
      jobs.push({ id: jobId, stepId: id, kind: 'child-run', known: runsKnown, ...(target.foreach === undefined ? {} : { index }) });
      continue;
    }
    const child = await lookup.definition(target.slug, target.version);
    jobs.push({
      id: jobId,
      stepId: id,
      kind: 'child-run',
      known: runsKnown,
      ...(target.foreach === undefined ? {} : { index }),
      child: {
        definition: { slug: child.slug, version: child.version },
        input: childInput,
        plan: await planRun(child.spec, childInput, lookup, depth + 1),
      },
    });
  }
  return jobs;
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
 * A definition version of an organization (the latest when `version` is absent).
 * @throws {NotFoundError} (field `definition` / `version`).
 */
async function storedDefinition(db: Db, organizationId: string, slug: string, version?: number): Promise<{ slug: string; version: number; spec: Definition }> {
  const [row] = await db
    .select({ slug: definitions.slug, version: definitions.version, spec: definitions.spec })
    .from(definitions)
    .where(and(eq(definitions.organizationId, organizationId), eq(definitions.slug, slug), version === undefined ? undefined : eq(definitions.version, version)))
    .orderBy(desc(definitions.version))
    .limit(1);
  if (!row) {
    throw new NotFoundError(version === undefined ? `definition "${slug}" not found` : `definition "${slug}" version ${version} not found`, {
      field: version === undefined ? 'definition' : 'version',
    });
  }
  return { slug: row.slug, version: row.version, spec: row.spec as Definition };
}

/** Child definitions and orchestrator agents of one organization, from Postgres. */
function databaseLookup(db: Db, organizationId: string): PlanLookup {
  return {
    definition: (slug, version) => storedDefinition(db, organizationId, slug, version),
    async orchestratorAgent(name) {
      const [row] = await db
        .select({ type: agents.type, config: agents.config })
        .from(agents)
        .where(and(eq(agents.organizationId, organizationId), eq(agents.name, name)))
        .orderBy(desc(agents.version))
        .limit(1);
      if (!row || row.type !== 'orchestrator') return undefined;
      const config = (row.config ?? {}) as { definition?: unknown; version?: unknown; foreach?: unknown; input?: unknown };
      if (typeof config.definition !== 'string') return undefined;
      return {
        definition: config.definition,
        ...(typeof config.version === 'number' ? { version: config.version } : {}),
        ...(typeof config.foreach === 'string' ? { foreach: config.foreach } : {}),
        ...(config.input === undefined ? {} : { input: config.input }),
      };
    },
  };
}

/**
 * Validate a run request exactly as a real start does (definition and version exist, input
 * matches the input schema) and return the plan for that input, creating nothing: no run row,
 * no event, no job.
 * @throws {NotFoundError} unknown definition or version (field `definition` / `version`).
 * @throws {ValidationError} input does not match the definition's input schema (field `input.…`).
 */
export async function dryRun(db: Db, request: DryRunRequest): Promise<DryRunResult> {
  const stored = await storedDefinition(db, request.organizationId, request.definition, request.version);
  validateInput(stored.spec, request.input);
  const plan = await planRun(stored.spec, request.input, databaseLookup(db, request.organizationId));
  return { dryRun: true, definition: { slug: stored.slug, version: stored.version }, plan };
}
