/**
 * Loading definitions: YAML (or JSON) → validated {@link Definition}, plus DAG helpers.
 *
 * Validation happens in two passes: the zod schema checks the document's shape (see
 * `schema.ts`); if that passes, cross-field rules are checked (duplicate ids, unknown `needs`,
 * cycles, unknown agents, expressions and their `steps.<id>` references, checkpoint rules, JSON
 * Schemas). Every problem is reported with the position of the offending YAML node
 * (`file:line:column`), or with its JSON path for JSON bodies; parsing, positions and the error
 * format are `lib/yaml-source.ts`'s, shared with the agent catalog and the step modules.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ValidateFunction } from 'ajv';
import type { z } from 'zod';
import {
  DefinitionError,
  formatPath,
  parseYamlSource,
  problemsError,
  sourceError,
  type PositionedProblem,
  type Segment,
  type SourceProblem,
} from '../lib/index.js';
import type { AgentType } from '../agents/types.js';
import {
  compileExpression,
  conditionExpression,
  parseTemplate,
  referencedSteps,
  templateSites,
} from './expressions.js';
import { compileJsonSchema, rememberInputValidator } from './json-schema.js';
import {
  DEFAULTS,
  definitionSchema,
  STEP_ID_PATTERN,
  STEP_KEYS,
  stepShapeOf,
  type CheckpointStep,
  type Definition,
  type DefinitionDocument,
  type RetryPolicy,
  type StepDocument,
  type StepShapeKind,
  type StepSpec,
} from './schema.js';

/** Options for {@link parseDefinition} and {@link parseDefinitionObject}. */
export interface DefinitionLoadOptions {
  /** Where the definition comes from; prefixes every error message (a path or a label). */
  file: string;
  /** Known agents by name, with their type (steps may only name these). */
  agents: ReadonlyMap<string, AgentType>;
}

/**
 * One problem found while loading a definition (all of them are in
 * `DefinitionError.details.problems`): `file`, 1-based `line` and `column` of the offending YAML
 * node (absent for JSON bodies), its JSON `path` (e.g. `steps[1].needs[0]`, `''` for the
 * document) and the broken rule as `message` (e.g. `step kpis: needs unknown step "lod"`).
 */
export type DefinitionProblem = PositionedProblem;

/** A problem before it is given a position: the path of its node inside the document. */
type PendingProblem = SourceProblem;

// ---------------------------------------------------------------------------------------------
// Paths and messages
// ---------------------------------------------------------------------------------------------

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function valueAt(root: unknown, path: readonly Segment[]): unknown {
  let node = root;
  for (const segment of path) {
    if (Array.isArray(node) && typeof segment === 'number') node = node[segment];
    else if (isRecord(node)) node = node[String(segment)];
    else return undefined;
  }
  return node;
}

/** `step <id>` for paths inside a step (or `steps[i]` if its id is unusable), else `''`. */
function subjectOf(path: readonly Segment[], raw: unknown): { subject: string; rest: Segment[] } {
  const [first, index] = path;
  if (first === 'steps' && typeof index === 'number') {
    const id = valueAt(raw, ['steps', index, 'id']);
    const subject = typeof id === 'string' && STEP_ID_PATTERN.test(id) ? `step ${id}` : `steps[${index}]`;
    return { subject, rest: path.slice(2) };
  }
  return { subject: '', rest: [...path] };
}

function compose(subject: string, text: string): string {
  return subject === '' ? text : `${subject}: ${text}`;
}

/** Short description of a value for messages. */
function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (isRecord(value)) return 'a mapping';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

const EXPECTED_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

const SHAPE_NAMES: Record<StepShapeKind, string> = {
  agent: 'agent',
  'function-code': 'type: function',
  http: 'type: http',
  llm: 'type: context',
  orchestrator: 'type: orchestrator',
  checkpoint: 'type: checkpoint',
};

/** Levenshtein distance (for "did you mean" hints on short keys). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost));
    }
    previous = current;
  }
  return previous[b.length] ?? Math.max(a.length, b.length);
}

/**
 * Explain an unknown step key: it belongs to another kind of step, or it looks like a known key.
 */
function unknownStepKeyHint(key: string, raw: unknown, rest: readonly Segment[], stepPath: readonly Segment[]): string {
  if (rest.length !== 0) return '';
  const shape = stepShapeOf(valueAt(raw, stepPath));
  const owners = (Object.keys(STEP_KEYS) as StepShapeKind[]).filter((kind) => kind !== shape && STEP_KEYS[kind].includes(key));
  if (owners.length > 0) return ` (only valid on ${owners.map((kind) => SHAPE_NAMES[kind]).join(' / ')} steps)`;
  const allowed = shape === undefined ? [] : STEP_KEYS[shape];
  const close = allowed.find((candidate) => editDistance(candidate, key) <= 2);
  return close === undefined ? '' : ` (did you mean "${close}"?)`;
}

/** Turn one zod issue into positioned-by-path problems with a readable rule. */
function problemsFromIssue(issue: z.core.$ZodIssue, raw: unknown): PendingProblem[] {
  const path = issue.path.filter((segment): segment is Segment => typeof segment !== 'symbol');
  const { subject, rest } = subjectOf(path, raw);
  const label = formatPath(rest) || (subject === '' ? 'the definition' : '');
  const value = valueAt(raw, path);
  const rule = (text: string): PendingProblem => ({ path, message: compose(subject, label ? `${label} ${text}` : text) });

  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({
        path: [...path, key],
        atKey: true,
        message: compose(
          subject,
          `unknown key "${formatPath([...rest, key])}"${subject === '' ? '' : unknownStepKeyHint(key, raw, rest, path.slice(0, 2))}`,
        ),
      }));
    case 'invalid_type': {
      if (value === undefined && path.length > 0) {
        return [{ path: path.slice(0, -1), message: compose(subject, `missing required key "${formatPath(rest)}"`) }];
      }
      const expected = EXPECTED_NAMES[issue.expected] ?? issue.expected;
      return [rule(`must be ${expected} (got ${describeValue(value)})`)];
    }
    case 'invalid_format':
      return [rule(issue.pattern ? `must match ${issue.pattern} (got ${describeValue(value)})` : `must be a valid ${issue.format}`)];
    case 'too_small': {
      const min = Number(issue.minimum);
      if (issue.origin === 'array') return [rule(min <= 1 ? 'must not be empty' : `must have at least ${min} items`)];
      if (issue.origin === 'string') return [rule(min <= 1 ? 'must not be empty' : `must have at least ${min} characters`)];
      return [rule(`${issue.inclusive === false ? 'must be greater than' : 'must be at least'} ${min} (got ${describeValue(value)})`)];
    }
    case 'too_big': {
      const max = Number(issue.maximum);
      if (issue.origin === 'array') return [rule(`must have at most ${max} items`)];
      if (issue.origin === 'string') return [rule(`must have at most ${max} characters`)];
      return [rule(`${issue.inclusive === false ? 'must be less than' : 'must be at most'} ${max} (got ${describeValue(value)})`)];
    }
    case 'invalid_value': {
      const values = issue.values.map((v) => String(v));
      return [
        rule(
          values.length === 1
            ? `must be ${JSON.stringify(values[0])} (got ${describeValue(value)})`
            : `must be one of ${values.join(', ')} (got ${describeValue(value)})`,
        ),
      ];
    }
    case 'custom':
      return [rule(issue.message)];
    default:
      return [rule(issue.message)];
  }
}

/** `86400000` → `24h` (largest exact unit). */
function formatMs(value: number): string {
  const units: Array<[string, number]> = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  for (const [unit, size] of units) if (value % size === 0) return `${value / size}${unit}`;
  return `${value}ms`;
}

// ---------------------------------------------------------------------------------------------
// Cross-field validation
// ---------------------------------------------------------------------------------------------

type Built = { ok: true; definition: Definition; inputValidator: ValidateFunction } | { ok: false; problems: PendingProblem[] };

const DEFAULT_RETRY: RetryPolicy = {
  attempts: DEFAULTS.retryAttempts,
  backoffMs: DEFAULTS.retryBackoffMs,
  maxDelayMs: DEFAULTS.retryMaxDelayMs,
};

/** Validate one document (shape, then cross-field rules). */
function validateDocument(raw: unknown, options: DefinitionLoadOptions): Built {
  const parsed = definitionSchema.safeParse(raw);
  if (!parsed.success) {
    return { ok: false, problems: parsed.error.issues.flatMap((issue) => problemsFromIssue(issue, raw)) };
  }
  return buildDefinition(parsed.data, options);
}

/** Map a shape-validated step to its {@link StepSpec}, collecting per-step problems. */
function toStepSpec(
  step: StepDocument,
  index: number,
  agents: ReadonlyMap<string, AgentType>,
  problems: PendingProblem[],
): StepSpec {
  const at = (...rest: Segment[]): Segment[] => ['steps', index, ...rest];
  const subject = `step ${step.id}`;

  let when: string | undefined;
  if (step.when !== undefined) {
    try {
      when = conditionExpression(step.when);
    } catch (err: unknown) {
      if (!(err instanceof DefinitionError)) throw err;
      problems.push({ path: at('when'), message: compose(subject, `when: ${err.message}`) });
    }
  }

  if (step.shape === 'checkpoint') {
    const spec: CheckpointStep = {
      kind: 'checkpoint',
      type: 'checkpoint',
      id: step.id,
      needs: step.needs,
      with: {},
      retry: { ...DEFAULT_RETRY },
      onError: 'fail',
      prompt: step.prompt,
      approvers: step.approvers,
      decisions: step.decisions,
      timeoutMs: step.timeout,
      onTimeout: step.onTimeout,
      remindMs: step.remind,
      required: step.required,
      selfApproval: step.selfApproval,
      ifSkipped: step.ifSkipped,
      concurrency: 1,
    };
    if (step.compensate !== undefined) spec.compensate = step.compensate;
    if (when !== undefined) spec.when = when;
    if (step.show !== undefined) spec.show = step.show;
    if (step.retryStep !== undefined) spec.retryStep = step.retryStep;
    if (step.modify !== undefined) spec.modify = step.modify;
    return spec;
  }

  const retry: RetryPolicy = step.retry
    ? { attempts: step.retry.attempts, backoffMs: step.retry.backoff, maxDelayMs: step.retry.maxDelay }
    : { ...DEFAULT_RETRY };
  if (retry.maxDelayMs < retry.backoffMs) {
    problems.push({
      path: at('retry', 'maxDelay'),
      message: compose(subject, `retry.maxDelay (${formatMs(retry.maxDelayMs)}) must not be shorter than retry.backoff (${formatMs(retry.backoffMs)})`),
    });
  }
  let foreach: string | undefined;
  if (step.foreach !== undefined) {
    try {
      foreach = conditionExpression(step.foreach);
    } catch (err: unknown) {
      if (!(err instanceof DefinitionError)) throw err;
      problems.push({ path: at('foreach'), message: compose(subject, `foreach: ${err.message}`) });
    }
  }
  const base = {
    id: step.id,
    needs: step.needs,
    with: step.with,
    retry,
    onError: step.onError,
    ifSkipped: step.ifSkipped,
    concurrency: step.concurrency,
    ...(when === undefined ? {} : { when }),
    ...(foreach === undefined ? {} : { foreach }),
    ...(step.timeout === undefined ? {} : { timeoutMs: step.timeout }),
    ...(step.cache === undefined ? {} : { cacheTtlMs: step.cache.ttl }),
    ...(step.compensate === undefined ? {} : { compensate: step.compensate }),
  };

  switch (step.shape) {
    case 'agent': {
      const known = agents.get(step.agent);
      if (known === undefined) {
        const names = [...agents.keys()].sort();
        problems.push({
          path: at('agent'),
          message: compose(subject, `unknown agent "${step.agent}" (known: ${names.length > 0 ? names.join(', ') : 'none'})`),
        });
      } else if (step.type !== undefined && step.type !== known) {
        problems.push({
          path: at('type'),
          message: compose(subject, `agent "${step.agent}" is a ${known} agent, but the step says type ${step.type}`),
        });
      }
      // The fallback only matters when a problem was recorded above (the definition is rejected).
      const type: AgentType =
        known ?? (step.type === undefined || step.type === 'checkpoint' ? 'context' : step.type === 'http' ? 'api' : step.type);
      return { kind: 'agent', type, agent: step.agent, ...base };
    }
    case 'function-code':
      return {
        kind: 'function-code',
        type: 'function',
        ...(step.code === undefined ? {} : { code: step.code }),
        ...(step.module === undefined ? {} : { module: step.module }),
        limits: {
          timeoutMs: step.limits?.timeout ?? DEFAULTS.functionTimeoutMs,
          memoryMb: step.limits?.memoryMb ?? DEFAULTS.functionMemoryMb,
        },
        ...base,
      };
    case 'http':
      return {
        kind: 'http',
        type: 'api',
        okStatus: step.okStatus,
        ...base,
        retry: step.retry ? retry : { ...DEFAULT_RETRY, attempts: DEFAULTS.httpRetryAttempts },
      };
    case 'llm':
      return { kind: 'llm', type: 'context', ...base };
    case 'orchestrator':
      return {
        kind: 'orchestrator',
        type: 'orchestrator',
        run: step.run.version === undefined ? { slug: step.run.slug } : { slug: step.run.slug, version: step.run.version },
        ...base,
      };
  }
}

/**
 * Find one cycle in the `needs` graph (known ids only), following steps in file order.
 * @returns the cycle as ids in `needs` direction (`[a, b, a]`: a needs b, b needs a) and the path
 *   of the `needs` entry that closes it.
 */
function findCycle(steps: readonly StepSpec[], indexById: ReadonlyMap<string, number>): { ids: string[]; path: Segment[] } | undefined {
  const state = new Map<string, 'active' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string): { ids: string[]; path: Segment[] } | undefined => {
    state.set(id, 'active');
    stack.push(id);
    const index = indexById.get(id);
    const step = index === undefined ? undefined : steps[index];
    for (const [j, need] of (step?.needs ?? []).entries()) {
      if (!indexById.has(need)) continue;
      const seen = state.get(need);
      if (seen === 'active') {
        const from = stack.indexOf(need);
        return { ids: [...stack.slice(from), need], path: ['steps', index ?? 0, 'needs', j] };
      }
      if (seen === undefined) {
        const found = visit(need);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const step of steps) {
    if (state.has(step.id)) continue;
    const found = visit(step.id);
    if (found) return found;
  }
  return undefined;
}

/** Transitive `needs` of every step (the graph must be acyclic). */
function ancestorMap(steps: readonly StepSpec[]): Map<string, Set<string>> {
  const byId = new Map<string, StepSpec>();
  for (const step of steps) if (!byId.has(step.id)) byId.set(step.id, step);
  const memo = new Map<string, Set<string>>();
  const compute = (id: string): Set<string> => {
    const cached = memo.get(id);
    if (cached) return cached;
    const result = new Set<string>();
    memo.set(id, result);
    for (const need of byId.get(id)?.needs ?? []) {
      if (!byId.has(need)) continue;
      result.add(need);
      for (const ancestor of compute(need)) result.add(ancestor);
    }
    return result;
  };
  for (const step of steps) compute(step.id);
  return memo;
}

/** A place in the document holding expressions. */
interface ExpressionSite {
  path: Segment[];
  /** Where it is, for messages: `with.prices`, `when`, `prompt`. */
  label: string;
  /** Template text (`${{ }}` inside), or a bare expression when `bare` is set. */
  text: string;
  bare?: boolean;
}

function mappingSites(mapping: unknown, path: Segment[], label: string): ExpressionSite[] {
  return templateSites(mapping).map((site) => ({
    path: [...path, ...site.path],
    label: formatPath([label, ...site.path]),
    text: site.text,
  }));
}

/**
 * Compile every expression of `sites` and check its `steps.<id>` references: inside a step they
 * must be ancestors (`ancestors` undefined when the graph has a cycle: only existence is checked);
 * in the run output (`owner` undefined) any existing step.
 */
function checkExpressions(
  sites: readonly ExpressionSite[],
  owner: string | undefined,
  indexById: ReadonlyMap<string, number>,
  ancestors: ReadonlyMap<string, Set<string>> | undefined,
  problems: PendingProblem[],
): void {
  const subject = owner === undefined ? '' : `step ${owner}`;
  for (const site of sites) {
    let expressions: string[];
    try {
      expressions = site.bare
        ? [site.text]
        : parseTemplate(site.text).flatMap((part) => (part.kind === 'expression' ? [part.expression] : []));
    } catch (err: unknown) {
      if (!(err instanceof DefinitionError)) throw err;
      problems.push({ path: site.path, message: compose(subject, `${site.label}: ${err.message}`) });
      continue;
    }
    for (const expression of expressions) {
      try {
        compileExpression(expression);
      } catch (err: unknown) {
        if (!(err instanceof DefinitionError)) throw err;
        problems.push({ path: site.path, message: compose(subject, `${site.label}: ${err.message}`) });
        continue;
      }
      for (const ref of referencedSteps(expression)) {
        const who = owner === undefined ? 'output' : `step ${owner}`;
        if (!indexById.has(ref)) {
          problems.push({ path: site.path, message: `${who} references steps.${ref}, which is not a step` });
        } else if (owner !== undefined && ancestors && !ancestors.get(owner)?.has(ref)) {
          problems.push({ path: site.path, message: `${who} references steps.${ref}, which is not among its needs` });
        }
      }
    }
  }
}

/** Cross-field rules over a shape-valid document; builds the {@link Definition}. */
function buildDefinition(doc: DefinitionDocument, options: DefinitionLoadOptions): Built {
  const problems: PendingProblem[] = [];

  const indexById = new Map<string, number>();
  doc.steps.forEach((step, i) => {
    const first = indexById.get(step.id);
    if (first === undefined) indexById.set(step.id, i);
    else problems.push({ path: ['steps', i, 'id'], message: `duplicate step id "${step.id}" (already used by steps[${first}])` });
  });

  const steps = doc.steps.map((step, i) => toStepSpec(step, i, options.agents, problems));
  const knownIds = [...indexById.keys()].join(', ');

  steps.forEach((step, i) => {
    const seen = new Set<string>();
    step.needs.forEach((need, j) => {
      if (seen.has(need)) {
        problems.push({ path: ['steps', i, 'needs', j], message: `step ${step.id}: lists "${need}" twice in needs` });
      }
      seen.add(need);
      if (!indexById.has(need)) {
        problems.push({
          path: ['steps', i, 'needs', j],
          message: `step ${step.id}: needs unknown step "${need}" (steps: ${knownIds})`,
        });
      }
    });
  });

  const cycle = findCycle(steps, indexById);
  if (cycle) problems.push({ path: cycle.path, message: `cycle: ${cycle.ids.join(' → ')}` });
  const ancestors = cycle ? undefined : ancestorMap(steps);

  steps.forEach((step, i) => {
    const at = (...rest: Segment[]): Segment[] => ['steps', i, ...rest];
    const sites: ExpressionSite[] = [];
    if (step.when !== undefined) sites.push({ path: at('when'), label: 'when', text: step.when, bare: true });
    if (step.foreach !== undefined) {
      sites.push({ path: at('foreach'), label: 'foreach', text: step.foreach, bare: true });
      if (step.kind === 'orchestrator') {
        problems.push({ path: at('foreach'), message: `step ${step.id}: foreach is not supported on orchestrator steps` });
      }
    }
    if (step.compensate !== undefined) {
      const target = steps[indexById.get(step.compensate) ?? -1];
      if (!target) {
        problems.push({ path: at('compensate'), message: `step ${step.id}: compensate names unknown step "${step.compensate}"` });
      } else if (target.needs.length > 0 || target.id === step.id) {
        problems.push({ path: at('compensate'), message: `step ${step.id}: compensation step "${step.compensate}" must have no needs (it runs only on abort)` });
      }
    }
    if (step.kind === 'checkpoint') {
      sites.push({ path: at('prompt'), label: 'prompt', text: step.prompt });
      if (step.show !== undefined) sites.push(...mappingSites(step.show, at('show'), 'show'));
    } else {
      sites.push(...mappingSites(step.with, at('with'), 'with'));
    }
    checkExpressions(sites, step.id, indexById, ancestors, problems);
    if (step.kind === 'checkpoint') checkCheckpoint(step, i, indexById, ancestors, problems);
  });

  const compiledInput = compileJsonSchema(doc.input);
  if (!compiledInput.ok) {
    problems.push({ path: ['input', ...compiledInput.problem.path], message: `input ${compiledInput.problem.message}` });
  }

  const output = doc.output !== undefined ? doc.output : defaultOutput(steps);
  checkExpressions(mappingSites(output, ['output'], 'output'), undefined, indexById, ancestors, problems);

  if (problems.length > 0 || !compiledInput.ok) return { ok: false, problems };
  const definition: Definition = {
    slug: doc.slug,
    version: doc.version,
    name: doc.name,
    ...(doc.description === undefined ? {} : { description: doc.description }),
    input: doc.input,
    steps,
    output,
    file: options.file,
  };
  return { ok: true, definition, inputValidator: compiledInput.validate };
}

/** Default run output: every leaf step's output keyed by step id. */
function defaultOutput(steps: readonly StepSpec[]): Record<string, string> {
  const needed = new Set(steps.flatMap((step) => step.needs));
  return Object.fromEntries(
    steps.filter((step) => !needed.has(step.id)).map((step) => [step.id, `\${{ steps.${step.id}.output }}`]),
  );
}

/** Checkpoint rules: decisions, retryStep, reminders, `modify` schema. */
function checkCheckpoint(
  step: CheckpointStep,
  index: number,
  indexById: ReadonlyMap<string, number>,
  ancestors: ReadonlyMap<string, Set<string>> | undefined,
  problems: PendingProblem[],
): void {
  const at = (...rest: Segment[]): Segment[] => ['steps', index, ...rest];
  const subject = `step ${step.id}`;
  step.decisions.forEach((decision, j) => {
    if (step.decisions.indexOf(decision) !== j) {
      problems.push({ path: at('decisions', j), message: compose(subject, `decisions lists "${decision}" twice`) });
    }
  });
  const retryDecision = step.decisions.includes('retry');
  const retryOnTimeout = step.onTimeout === 'retry';
  if (step.retryStep === undefined) {
    if (retryDecision) {
      problems.push({ path: at(), message: compose(subject, 'retryStep is required when decisions include retry') });
    } else if (retryOnTimeout) {
      problems.push({ path: at(), message: compose(subject, 'retryStep is required when onTimeout is retry') });
    }
  } else if (!retryDecision && !retryOnTimeout) {
    problems.push({
      path: at('retryStep'),
      message: compose(subject, 'retryStep is only allowed when decisions include retry or onTimeout is retry'),
    });
  } else if (!indexById.has(step.retryStep)) {
    problems.push({ path: at('retryStep'), message: compose(subject, `retryStep "${step.retryStep}" is not a step`) });
  } else if (ancestors && !ancestors.get(step.id)?.has(step.retryStep)) {
    problems.push({
      path: at('retryStep'),
      message: compose(subject, `retryStep "${step.retryStep}" is not an ancestor of ${step.id} (it must be among its needs, directly or transitively)`),
    });
  }
  step.remindMs.forEach((remind, j) => {
    if (remind >= step.timeoutMs) {
      problems.push({
        path: at('remind', j),
        message: compose(subject, `remind ${formatMs(remind)} must be shorter than timeout ${formatMs(step.timeoutMs)}`),
      });
    }
  });
  if (step.modify !== undefined) {
    const compiled = compileJsonSchema(step.modify);
    if (!compiled.ok) {
      problems.push({ path: at('modify', ...compiled.problem.path), message: compose(subject, `modify ${compiled.problem.message}`) });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// YAML documents
// ---------------------------------------------------------------------------------------------

/** Parse YAML and validate; also returns the position of `slug` (for duplicate checks). */
function parseYamlDefinition(
  source: string,
  options: DefinitionLoadOptions,
): { definition: Definition; slugLine: number; slugColumn: number } {
  const yaml = parseYamlSource(source, options.file);
  const built = validateDocument(yaml.value, options);
  if (!built.ok) throw sourceError(options.file, yaml, built.problems);
  rememberInputValidator(built.definition, built.inputValidator);
  const slug = yaml.positionOf(['slug']);
  return { definition: built.definition, slugLine: slug.line, slugColumn: slug.column };
}

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/**
 * Parse and validate one YAML definition.
 * @param source - the YAML text (one document).
 * @param options.file - path or label used in messages and stored as `Definition.file`.
 * @param options.agents - known agents (name → type).
 * @returns the validated definition (durations in milliseconds, defaults applied, `when`
 *   stripped of `${{ }}`, `output` defaulted to the leaf steps' outputs).
 * @throws {DefinitionError} with message `<file>:<line>:<column>: <rule>` (1-based, the first
 *   problem in document order leads; up to five are listed, joined by `; `) and
 *   `details.problems`: every {@link DefinitionProblem}. YAML syntax errors are reported the same
 *   way.
 */
export function parseDefinition(source: string, options: DefinitionLoadOptions): Definition {
  return parseYamlDefinition(source, options).definition;
}

/**
 * Validate a definition given as a parsed JSON value (e.g. an API request body). Same rules as
 * {@link parseDefinition}.
 * @throws {DefinitionError} with message `<file>: <json path>: <rule>` (e.g.
 *   `body: steps[1].needs[0]: step kpis: needs unknown step "lod" (…)`), `details.problems` as for
 *   YAML but without `line`/`column`.
 */
export function parseDefinitionObject(value: unknown, options: DefinitionLoadOptions): Definition {
  const { file } = options;
  let raw: unknown;
  try {
    raw = structuredClone(value);
  } catch {
    throw problemsError([{ file, path: '', message: 'the definition must be plain JSON data' }]);
  }
  const built = validateDocument(raw, options);
  if (!built.ok) {
    throw sourceError(file, undefined, built.problems);
  }
  rememberInputValidator(built.definition, built.inputValidator);
  return built.definition;
}

/**
 * Load every `*.yaml` / `*.yml` file directly in `dir` (not subdirectories, not dot-files),
 * in file-name order.
 * @returns the definitions in file-name order.
 * @throws {DefinitionError} for the first invalid file (message starts with its path, as
 *   `join(dir, name)`), or when two files define the same `slug` and `version`.
 */
export async function loadDefinitionsDir(dir: string, agents: ReadonlyMap<string, AgentType>): Promise<Definition[]> {
  const names = (await readdir(dir))
    .filter((name) => /\.ya?ml$/i.test(name) && !name.startsWith('.'))
    .sort();
  const definitions: Definition[] = [];
  const seen = new Map<string, string>();
  for (const name of names) {
    const file = join(dir, name);
    if (!(await stat(file)).isFile()) continue;
    const source = await readFile(file, 'utf8');
    const { definition, slugLine, slugColumn } = parseYamlDefinition(source, { file, agents });
    const key = `${definition.slug}@${definition.version}`;
    const other = seen.get(key);
    if (other !== undefined) {
      throw problemsError([
        { file, line: slugLine, column: slugColumn, path: 'slug', message: `duplicate definition ${key} (also defined in ${other})` },
      ]);
    }
    seen.set(key, file);
    definitions.push(definition);
  }
  return definitions;
}

// ---------------------------------------------------------------------------------------------
// DAG helpers
// ---------------------------------------------------------------------------------------------

/** The part of a definition the DAG helpers need. */
export type StepGraph = Pick<Definition, 'steps'>;

function requireStep(def: StepGraph, stepId: string): StepSpec {
  const step = def.steps.find((candidate) => candidate.id === stepId);
  if (!step) throw new DefinitionError(`no step "${stepId}" (steps: ${def.steps.map((s) => s.id).join(', ')})`);
  return step;
}

/**
 * Step ids in an order where every step comes after its `needs`; among steps that are ready at
 * the same time, file order wins (stable).
 * @throws {DefinitionError} if the steps contain a cycle or an unknown `needs` id (impossible for
 *   loaded definitions).
 */
export function topologicalOrder(def: StepGraph): string[] {
  const done = new Set<string>();
  const order: string[] = [];
  const pending = [...def.steps];
  while (pending.length > 0) {
    const next = pending.findIndex((step) => step.needs.every((need) => done.has(need)));
    const step = pending[next];
    if (next < 0 || !step) {
      throw new DefinitionError(`steps ${pending.map((s) => s.id).join(', ')} can never run (cycle or unknown needs)`);
    }
    pending.splice(next, 1);
    done.add(step.id);
    order.push(step.id);
  }
  return order;
}

/**
 * Every step `stepId` depends on, directly or transitively.
 * @throws {DefinitionError} if there is no such step.
 */
export function ancestorsOf(def: StepGraph, stepId: string): Set<string> {
  requireStep(def, stepId);
  const byId = new Map(def.steps.map((step) => [step.id, step] as const));
  const result = new Set<string>();
  const queue = [...(byId.get(stepId)?.needs ?? [])];
  for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
    if (result.has(id)) continue;
    result.add(id);
    queue.push(...(byId.get(id)?.needs ?? []));
  }
  return result;
}

/**
 * Steps that list `stepId` in their `needs` (direct dependents), in file order.
 * @throws {DefinitionError} if there is no such step.
 */
export function successorsOf(def: StepGraph, stepId: string): string[] {
  requireStep(def, stepId);
  return def.steps.filter((step) => step.needs.includes(stepId)).map((step) => step.id);
}

/**
 * Every step that depends on `stepId`, directly or transitively (e.g. to skip them when it fails).
 * @throws {DefinitionError} if there is no such step.
 */
export function descendantsOf(def: StepGraph, stepId: string): Set<string> {
  requireStep(def, stepId);
  const result = new Set<string>();
  const queue = [stepId];
  for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
    for (const step of def.steps) {
      if (step.needs.includes(id) && !result.has(step.id)) {
        result.add(step.id);
        queue.push(step.id);
      }
    }
  }
  return result;
}
