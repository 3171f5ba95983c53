/**
 * Definition rules: the cross-field checks that run once a document has the right shape
 * (`schema.ts`), and the mapping from document to {@link Definition} (durations in
 * milliseconds, defaults applied). Duplicate ids, unknown or repeated `needs`, cycles
 * (`graph.ts`), unknown agents, expressions and their `steps.<id>` references, compensation and
 * checkpoint rules, and JSON Schemas. Every rule yields a {@link PendingProblem} addressed by
 * path; nothing here throws for bad input.
 */
import type { ValidateFunction } from 'ajv';
import { DefinitionError, formatPath, type Segment } from '../lib/index.js';
import type { AgentType } from '../agents/types.js';
import { compileExpression, conditionExpression, parseTemplate, referencedSteps, templateSites } from './expressions.js';
import { ancestryOf, findCycle, type Ancestry } from './graph.js';
import { compileJsonSchema } from './json-schema.js';
import { definitionLimits } from './limits.js';
import { compose, formatMs, problemsFromIssue, type PendingProblem } from './problems.js';
import {
  DEFAULTS,
  definitionSchema,
  type CheckpointStep,
  type ConcurrencyPolicy,
  type Definition,
  type DefinitionDocument,
  type RetryPolicy,
  type StepDocument,
  type StepSpec,
} from './schema.js';

/** Options for `parseDefinition` and `parseDefinitionObject` (load.ts), as the rules need them. */
export interface DefinitionLoadOptions {
  /** Where the definition comes from; prefixes every error message (a path or a label). */
  file: string;
  /** Known agents by name, with their type (steps may only name these). */
  agents: ReadonlyMap<string, AgentType>;
}

/**
 * The outcome of {@link validateDocument}: the definition and its compiled input validator, or
 * every problem found (not yet positioned).
 */
export type ValidatedDocument =
  | { ok: true; definition: Definition; inputValidator: ValidateFunction }
  | { ok: false; problems: PendingProblem[] };

type Built = ValidatedDocument;

const DEFAULT_RETRY: RetryPolicy = {
  attempts: DEFAULTS.retryAttempts,
  backoffMs: DEFAULTS.retryBackoffMs,
  maxDelayMs: DEFAULTS.retryMaxDelayMs,
};

/**
 * Validate one parsed document: its shape (zod), then, if that passes, the cross-field rules.
 * @param raw - the document as parsed from YAML or JSON (not modified).
 */
export function validateDocument(raw: unknown, options: DefinitionLoadOptions): ValidatedDocument {
  const { maxSteps } = definitionLimits();
  const rawSteps = typeof raw === 'object' && raw !== null ? (raw as { steps?: unknown }).steps : undefined;
  if (Array.isArray(rawSteps) && rawSteps.length > maxSteps) {
    // Before the shape check: a huge definition is refused without validating every step.
    return { ok: false, problems: [{ path: ['steps'], message: `the definition has ${rawSteps.length} steps; at most ${maxSteps} (DEFINITION_MAX_STEPS) are allowed`, atKey: true }] };
  }
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
    for (const key of ['maxRetries', 'onRetriesExhausted'] as const) {
      if (step[key] !== undefined && step.onTimeout !== 'retry') {
        problems.push({ path: at(key), message: compose(subject, `${key} is only allowed when onTimeout is retry`) });
      }
    }
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
      ...(step.onTimeout === 'retry'
        ? { maxRetries: step.maxRetries ?? DEFAULTS.checkpointMaxRetries, onRetriesExhausted: step.onRetriesExhausted ?? 'abort' }
        : {}),
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
  ancestors: Ancestry | undefined,
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
        } else if (owner !== undefined && ancestors && !ancestors.has(owner, ref)) {
          problems.push({ path: site.path, message: `${who} references steps.${ref}, which is not among its needs` });
        }
      }
    }
  }
}

/**
 * Ancestry in which a compensation step (named by `compensate:`) also reads the steps it
 * compensates and their ancestors: they completed before it runs (`steps.book.output`, like
 * `compensated.output`).
 */
function withCompensated(ancestry: Ancestry, steps: readonly StepSpec[]): Ancestry {
  const undoes = new Map<string, string[]>();
  for (const s of steps) if (s.compensate !== undefined) undoes.set(s.compensate, [...(undoes.get(s.compensate) ?? []), s.id]);
  return {
    has: (stepId, ancestorId) =>
      ancestry.has(stepId, ancestorId) || (undoes.get(stepId) ?? []).some((id) => id === ancestorId || ancestry.has(id, ancestorId)),
  };
}

/** `compensated` exists only in a compensation step's expressions: refuse it anywhere else. */
function checkNoCompensated(sites: readonly ExpressionSite[], owner: string, problems: PendingProblem[]): void {
  for (const site of sites) {
    let expressions: string[];
    try {
      expressions = site.bare ? [site.text] : parseTemplate(site.text).flatMap((part) => (part.kind === 'expression' ? [part.expression] : []));
    } catch {
      continue; // reported by checkExpressions
    }
    if (expressions.some((e) => /(?<![A-Za-z0-9_$.])compensated\b/.test(e))) {
      problems.push({ path: site.path, message: `step ${owner}: ${site.label} reads compensated, but no step names ${owner} in compensate:` });
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
  const ancestors = cycle ? undefined : withCompensated(ancestryOf(steps), steps);

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
    if (!steps.some((s) => s.compensate === step.id)) checkNoCompensated(sites, step.id, problems);
    if (step.kind === 'checkpoint') checkCheckpoint(step, i, indexById, ancestors, problems);
    if (step.kind === 'orchestrator' && step.run.slug === doc.slug) {
      problems.push({
        path: at('run', 'slug'),
        message: `step ${step.id}: runs its own definition "${doc.slug}" as a sub-run (unbounded recursion); sub-runs are limited to MAX_RUN_DEPTH levels`,
      });
    }
  });

  const compiledInput = compileJsonSchema(doc.input);
  if (!compiledInput.ok) {
    problems.push({ path: ['input', ...compiledInput.problem.path], message: `input ${compiledInput.problem.message}` });
  }

  const output = doc.output !== undefined ? doc.output : defaultOutput(steps);
  checkExpressions(mappingSites(output, ['output'], 'output'), undefined, indexById, ancestors, problems);

  const concurrency = concurrencyPolicy(doc.concurrency, problems);

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
    ...(concurrency === undefined ? {} : { concurrency }),
  };
  return { ok: true, definition, inputValidator: compiledInput.validate };
}

/**
 * The definition's `concurrency:`: `key` is one expression (`${{ input.customer }}` or bare
 * JSONata) over the run input, so it may not read `steps.<id>` (no step has run when it is read).
 */
function concurrencyPolicy(doc: DefinitionDocument['concurrency'], problems: PendingProblem[]): ConcurrencyPolicy | undefined {
  if (doc === undefined) return undefined;
  if (doc.key === undefined) return { limit: doc.limit };
  try {
    const key = conditionExpression(doc.key);
    compileExpression(key);
    const refs = referencedSteps(key);
    if (refs.length > 0) {
      problems.push({ path: ['concurrency', 'key'], message: `concurrency.key may read only the run input (input.…), not steps.${refs[0]}` });
      return undefined;
    }
    return { limit: doc.limit, key };
  } catch (err: unknown) {
    if (!(err instanceof DefinitionError)) throw err;
    problems.push({ path: ['concurrency', 'key'], message: `concurrency.key: ${err.message}` });
    return undefined;
  }
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
  ancestors: Ancestry | undefined,
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
  } else if (ancestors && !ancestors.has(step.id, step.retryStep)) {
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
