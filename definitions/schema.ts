/**
 * The orchestration-definition DSL: one YAML (or JSON) document per definition.
 *
 * This module holds the zod schema of the document's *shape* (strict objects, so unknown keys are
 * errors; durations parsed to milliseconds) and the TypeScript types of a loaded
 * {@link Definition}. Cross-field rules (known agents, `needs`, cycles, expressions, JSON
 * Schemas) are checked by `rules.ts`, called from the loader in `load.ts`.
 */
import { z } from 'zod';
import { parseDurationMs } from '../lib/index.js';
import type { AgentType } from '../agents/types.js';

/** Definition slugs: `kpi-tracking`. */
export const SLUG_PATTERN = /^[a-z][a-z0-9-]*$/;
/** Step ids are identifiers so they work inside JSONata paths: `steps.load.output`. */
export const STEP_ID_PATTERN = /^[a-z][a-z0-9_]*$/;

/**
 * Every step type of the YAML: the agent types, `checkpoint`, and `http` (a generic request,
 * served by the `api` queue).
 */
export const STEP_TYPES = ['context', 'api', 'tool', 'function', 'orchestrator', 'checkpoint', 'http'] as const;
export type StepType = (typeof STEP_TYPES)[number];

/** What an approver may decide at a checkpoint. */
export const CHECKPOINT_DECISIONS = ['continue', 'retry', 'abort'] as const;
export type CheckpointDecision = (typeof CHECKPOINT_DECISIONS)[number];

/** What happens when nobody decides before a checkpoint's deadline. */
export const CHECKPOINT_TIMEOUT_ACTIONS = ['abort', 'continue', 'retry'] as const;
export type CheckpointTimeoutAction = (typeof CHECKPOINT_TIMEOUT_ACTIONS)[number];
/** What happens at a deadline once `onTimeout: retry` has retried `maxRetries` times. */
export const CHECKPOINT_RETRIES_EXHAUSTED_ACTIONS = ['abort', 'continue'] as const;
export type CheckpointRetriesExhaustedAction = (typeof CHECKPOINT_RETRIES_EXHAUSTED_ACTIONS)[number];

/** Defaults (milliseconds unless stated). */
export const DEFAULTS = {
  retryAttempts: 1,
  retryBackoffMs: 1_000,
  retryMaxDelayMs: 60_000,
  functionTimeoutMs: 5_000,
  functionMemoryMb: 64,
  /** `type: http` steps retry 429/5xx and network errors this often unless `retry:` says otherwise. */
  httpRetryAttempts: 3,
  checkpointTimeoutMs: 7 * 24 * 60 * 60 * 1000,
  checkpointDecisions: ['continue', 'abort'] as CheckpointDecision[],
  /** Deadlines an `onTimeout: retry` checkpoint retries before `onRetriesExhausted`. */
  checkpointMaxRetries: 3,
} as const;

/** Upper bound of `limits.memoryMb` for function steps. */
export const MAX_FUNCTION_MEMORY_MB = 1024;

// ---------------------------------------------------------------------------------------------
// Parsed result types (what the rest of Baton consumes)
// ---------------------------------------------------------------------------------------------

/** A JSON value whose strings may hold `${{ <jsonata> }}` templates. */
export type Mapping = unknown;

/** How a failed step attempt is retried. */
export interface RetryPolicy {
  /** Total attempts including the first (1 = no retry), 1..20. */
  attempts: number;
  /** Delay before the first retry in milliseconds; doubles per retry. */
  backoffMs: number;
  /** Cap on the delay between attempts in milliseconds. */
  maxDelayMs: number;
}

/** Fields every step has. */
export interface StepBase {
  /** Unique identifier (`^[a-z][a-z0-9_]*$`). */
  id: string;
  /** Ids of the steps that must finish first (direct dependencies, file order). */
  needs: string[];
  /** The step's input mapping (`{}` if absent; checkpoints: always `{}`). */
  with: Mapping;
  /** Condition as bare JSONata text (without `${{ }}`); the step is skipped when falsy. */
  when?: string;
  /** Retry policy (checkpoints: always the default, one attempt). */
  retry: RetryPolicy;
  /** Per-attempt timeout in milliseconds, if set. */
  timeoutMs?: number;
  /** `fail` fails the run when the step fails for good; `continue` lets dependents run. */
  onError: 'fail' | 'continue';
  /** When a needed step was skipped: `skip` this step too (default), or `run` it anyway. */
  ifSkipped: 'skip' | 'run';
  /** Fan-out (D4): bare JSONata text yielding a list; the step runs once per item (`item`, `index` in scope). */
  foreach?: string;
  /** Fan-out items running at once for this step (default 5). */
  concurrency: number;
  /** Reuse the output of an identical agent + input completed within this many milliseconds (D5). */
  cacheTtlMs?: number;
  /** Step to run if the run is aborted after this step completed (D9). */
  compensate?: string;
}

/** A step executed by a named agent (`agent: summarizer`). */
export interface AgentStep extends StepBase {
  kind: 'agent';
  /** The agent's type (from the known-agents map). */
  type: AgentType;
  agent: string;
}

/** A `type: function` step: inline code or a step module, run in the function runtime. */
export interface FunctionCodeStep extends StepBase {
  kind: 'function-code';
  type: 'function';
  /** JavaScript source defining `function main(input, ctx) { … }` (exactly one of `code`, `module`). */
  code?: string;
  /** A step module `name@version` (see `agents/modules/`). */
  module?: string;
  limits: {
    /** Sandbox wall-clock limit in milliseconds (default 5000). */
    timeoutMs: number;
    /** Sandbox memory limit in MiB (default 64). */
    memoryMb: number;
  };
}

/** A `type: http` step: one HTTP request from its `with: {method, url, headers, query, body, timeoutMs?}`. */
export interface HttpStep extends StepBase {
  kind: 'http';
  type: 'api';
  /** Non-2xx statuses that still count as success (the step's output carries them). */
  okStatus: number[];
}

/** A `type: context` step without an agent: one LLM call from `with: {prompt | messages, …}`. */
export interface LlmStep extends StepBase {
  kind: 'llm';
  type: 'context';
}

/** An approver: anyone with a role, or one user. */
export type Approver = { role: string } | { user: string };

/** A human approval gate. */
export interface CheckpointStep extends StepBase {
  kind: 'checkpoint';
  type: 'checkpoint';
  /** Text shown to approvers; may contain `${{ }}` templates (see `renderTemplate`). */
  prompt: string;
  /** Mapping evaluated and shown to approvers. */
  show?: Mapping;
  /** Who may decide (empty: anyone allowed to approve in the organization). */
  approvers: Approver[];
  /** Allowed decisions (non-empty, unique). */
  decisions: CheckpointDecision[];
  /** Step to re-run on a `retry` decision; an ancestor of this checkpoint. */
  retryStep?: string;
  /** JSON Schema of the modifications an approver may submit with a decision. */
  modify?: Record<string, unknown>;
  /** Deadline for a decision in milliseconds (default 7 days). */
  timeoutMs: number;
  onTimeout: CheckpointTimeoutAction;
  /**
   * With `onTimeout: retry`: how many deadlines are retried (default 3); at the next one
   * `onRetriesExhausted` applies (default `abort`). Absent for other `onTimeout`s.
   */
  maxRetries?: number;
  onRetriesExhausted?: CheckpointRetriesExhaustedAction;
  /** Reminder offsets in milliseconds before the deadline (each shorter than `timeoutMs`). */
  remindMs: number[];
  /** Number of approvals needed (≥ 1). */
  required: number;
  /** Whether the run's creator may approve. */
  selfApproval: boolean;
}

/** A step that starts another definition as a sub-run. */
export interface OrchestratorStep extends StepBase {
  kind: 'orchestrator';
  type: 'orchestrator';
  run: { slug: string; version?: number };
}

export type StepSpec = AgentStep | FunctionCodeStep | HttpStep | LlmStep | CheckpointStep | OrchestratorStep;
export type StepKind = StepSpec['kind'];

/** A loaded, validated definition. */
export interface Definition {
  slug: string;
  version: number;
  name: string;
  description?: string;
  /** JSON Schema of the run input (compiles with Ajv + ajv-formats). */
  input: Record<string, unknown>;
  /** Steps in file order. */
  steps: StepSpec[];
  /** Run output mapping (default: every leaf step's output, keyed by step id). */
  output: Mapping;
  /** Where the definition came from (file path, or a label for JSON bodies). */
  file: string;
  /** Runs in progress at once per (organization, definition, key value); the rest wait (`throttled`). */
  concurrency?: ConcurrencyPolicy;
}

/**
 * A definition's `concurrency:`: at most `limit` runs in progress per value of `key` (bare
 * JSONata over the run input, `input.customer`); without `key` one group for the definition.
 */
export interface ConcurrencyPolicy {
  limit: number;
  /** Bare JSONata text (without `${{ }}`), evaluated over `{input, run}`. */
  key?: string;
}

/** Largest `concurrency.limit`. */
export const MAX_CONCURRENCY_LIMIT = 100_000;

// ---------------------------------------------------------------------------------------------
// zod schema of the document
// ---------------------------------------------------------------------------------------------

/** A duration string (`30s`, `15m`, `24h`, `7d`) parsed to milliseconds. */
export const durationSchema = z.string().transform((text, ctx): number => {
  const value = parseDurationMs(text);
  if (value === undefined) {
    ctx.addIssue({ code: 'custom', message: `must be a duration such as 30s, 15m, 24h or 7d (got "${text}")` });
    return z.NEVER;
  }
  return value;
});

const stepIdSchema = z.string().regex(STEP_ID_PATTERN);
const jsonSchemaObject = z.record(z.string(), z.unknown());

const retrySchema = z.strictObject({
  attempts: z.number().int().min(1).max(20).default(DEFAULTS.retryAttempts),
  backoff: durationSchema.default(DEFAULTS.retryBackoffMs),
  maxDelay: durationSchema.default(DEFAULTS.retryMaxDelayMs),
});

const approverSchema = z
  .strictObject({ role: z.string().min(1).optional(), user: z.string().min(1).optional() })
  .transform((value, ctx): Approver => {
    if (value.role !== undefined && value.user === undefined) return { role: value.role };
    if (value.user !== undefined && value.role === undefined) return { user: value.user };
    ctx.addIssue({ code: 'custom', message: 'must have exactly one of role or user' });
    return z.NEVER;
  });

/** Keys every step may have. */
const baseShape = {
  id: stepIdSchema,
  needs: z.array(z.string()).default(() => []),
  when: z.string().min(1).optional(),
  timeout: durationSchema.optional(),
  ifSkipped: z.enum(['skip', 'run']).default('skip'),
  compensate: stepIdSchema.optional(),
};

/** Keys of steps that do work (everything but checkpoints). */
const workShape = {
  ...baseShape,
  with: z.unknown().default(() => ({})),
  retry: retrySchema.optional(),
  onError: z.enum(['fail', 'continue']).default('fail'),
  foreach: z.string().min(1).optional(),
  concurrency: z.number().int().min(1).max(100).default(5),
  cache: z.strictObject({ ttl: durationSchema }).optional(),
};

/** `agent: <name>` with an optional explicit `type` that must match the agent's type. */
export const agentStepSchema = z.strictObject({
  ...workShape,
  agent: z.string().min(1),
  type: z.enum(STEP_TYPES).optional(),
});

/** A step module reference: `name@version`. */
export const MODULE_REF_PATTERN = /^[a-z][a-z0-9-]*@[1-9][0-9]*$/;

/** `type: function` with inline `code` or a step `module`. */
export const functionCodeStepSchema = z.strictObject({
  ...workShape,
  type: z.literal('function'),
  code: z
    .string()
    .min(1)
    .refine((code) => /\bmain\b/.test(code), 'must define a function main(input, ctx)')
    .optional(),
  module: z.string().regex(MODULE_REF_PATTERN, { error: 'must be a step module reference name@version, e.g. kpi-metrics@1' }).optional(),
  limits: z
    .strictObject({
      timeout: durationSchema.default(DEFAULTS.functionTimeoutMs),
      memoryMb: z.number().int().min(1).max(MAX_FUNCTION_MEMORY_MB).default(DEFAULTS.functionMemoryMb),
    })
    .optional(),
});

/** `type: http`: a generic HTTP request. */
export const httpStepSchema = z.strictObject({
  ...workShape,
  type: z.literal('http'),
  okStatus: z.array(z.number().int().min(100).max(599)).default(() => []),
});

/** `type: context` without an agent: a generic LLM call. */
export const llmStepSchema = z.strictObject({
  ...workShape,
  type: z.literal('context'),
});

/** `type: orchestrator` starting another definition. */
export const orchestratorStepSchema = z.strictObject({
  ...workShape,
  type: z.literal('orchestrator'),
  run: z.strictObject({ slug: z.string().regex(SLUG_PATTERN), version: z.number().int().positive().max(2_147_483_647).optional() }),
});

/** `type: checkpoint`: a human approval gate. */
export const checkpointStepSchema = z.strictObject({
  ...baseShape,
  type: z.literal('checkpoint'),
  prompt: z.string().min(1),
  show: z.unknown().optional(),
  approvers: z.array(approverSchema).default(() => []),
  decisions: z.array(z.enum(CHECKPOINT_DECISIONS)).min(1).default(() => [...DEFAULTS.checkpointDecisions]),
  retryStep: stepIdSchema.optional(),
  modify: jsonSchemaObject.optional(),
  timeout: durationSchema.default(DEFAULTS.checkpointTimeoutMs),
  onTimeout: z.enum(CHECKPOINT_TIMEOUT_ACTIONS).default('abort'),
  maxRetries: z.number().int().min(0).max(100).optional(),
  onRetriesExhausted: z.enum(CHECKPOINT_RETRIES_EXHAUSTED_ACTIONS).optional(),
  remind: z.array(durationSchema).default(() => []),
  required: z.number().int().min(1).default(1),
  selfApproval: z.boolean().default(true),
});

/**
 * The named agent a `type: a2a` step runs (shipped in `agents/catalog/a2a-client.yaml`,
 * implementation `a2a`): `type: a2a` is shorthand for `agent: a2a-client`.
 */
export const A2A_STEP_AGENT = 'a2a-client';

/**
 * `type: a2a`: call a remote A2A agent. `with: {agentCardUrl | agentUrl, message, auth?, timeoutMs?,
 * approvalTimeoutMs?}` (values may be templates; the agent validates the evaluated input).
 */
export const a2aStepSchema = z.strictObject({
  ...workShape,
  type: z.literal('a2a'),
  with: z
    .record(z.string(), z.unknown())
    .refine((w) => (w['agentCardUrl'] === undefined) !== (w['agentUrl'] === undefined), {
      message: 'must have exactly one of agentCardUrl or agentUrl',
    })
    .refine((w) => w['message'] !== undefined, { message: 'must have a message (text or data)' }),
});

/** The schema a raw step is validated with, decided by its `agent` / `type` keys. */
export type StepShapeKind = 'agent' | 'function-code' | 'http' | 'llm' | 'orchestrator' | 'checkpoint';

/** Keys allowed per step shape (used to explain unknown keys). */
export const STEP_KEYS: Readonly<Record<StepShapeKind, readonly string[]>> = {
  agent: Object.keys(agentStepSchema.shape),
  'function-code': Object.keys(functionCodeStepSchema.shape),
  http: Object.keys(httpStepSchema.shape),
  llm: Object.keys(llmStepSchema.shape),
  orchestrator: Object.keys(orchestratorStepSchema.shape),
  checkpoint: Object.keys(checkpointStepSchema.shape),
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Which shape a raw step has: `agent` if it names an agent, otherwise decided by `type`
 * (`function` → inline code, `checkpoint`, `orchestrator`).
 * @returns the shape, or `undefined` if the step is not a mapping or its `type` needs an agent.
 */
export function stepShapeOf(raw: unknown): StepShapeKind | undefined {
  if (!isRecord(raw)) return undefined;
  if (raw['agent'] !== undefined) return 'agent';
  switch (raw['type']) {
    case 'function':
      return 'function-code';
    case 'http':
      return 'http';
    case 'context':
      return 'llm';
    case 'checkpoint':
      return 'checkpoint';
    case 'orchestrator':
      return 'orchestrator';
    default:
      return undefined;
  }
}

/** A step after shape validation (durations in milliseconds, defaults applied). */
export type StepDocument =
  | ({ shape: 'agent' } & z.output<typeof agentStepSchema>)
  | ({ shape: 'function-code' } & z.output<typeof functionCodeStepSchema>)
  | ({ shape: 'http' } & z.output<typeof httpStepSchema>)
  | ({ shape: 'llm' } & z.output<typeof llmStepSchema>)
  | ({ shape: 'orchestrator' } & z.output<typeof orchestratorStepSchema>)
  | ({ shape: 'checkpoint' } & z.output<typeof checkpointStepSchema>);

/** Validate `raw` with `schema`, re-raising its issues (paths relative to the step) on `ctx`. */
function parseShape<S extends z.ZodType>(
  schema: S,
  raw: unknown,
  ctx: z.core.$RefinementCtx,
): z.output<S> | typeof z.NEVER {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  for (const issue of result.error.issues) ctx.addIssue({ ...issue });
  return z.NEVER;
}

/** One step: dispatches to the schema of its shape (see {@link stepShapeOf}). */
export const stepSchema = z.unknown().transform((raw, ctx): StepDocument => {
  if (!isRecord(raw)) {
    ctx.addIssue({ code: 'custom', message: 'must be a mapping' });
    return z.NEVER;
  }
  if (raw['type'] === 'a2a' && raw['agent'] === undefined) {
    const parsed = parseShape(a2aStepSchema, raw, ctx);
    if (parsed === z.NEVER) return z.NEVER;
    const { type: _a2a, ...rest } = parsed;
    return { shape: 'agent', ...rest, agent: A2A_STEP_AGENT, type: 'api' };
  }
  const shape = stepShapeOf(raw);
  switch (shape) {
    case 'agent': {
      if (raw['type'] === 'checkpoint') {
        ctx.addIssue({ code: 'custom', path: ['type'], message: 'a checkpoint cannot have an agent' });
        return z.NEVER;
      }
      return { shape, ...parseShape(agentStepSchema, raw, ctx) };
    }
    case 'function-code': {
      const hasCode = raw['code'] !== undefined;
      if (hasCode === (raw['module'] !== undefined)) {
        ctx.addIssue({ code: 'custom', message: 'a function step must have exactly one of code or module' });
        return z.NEVER;
      }
      return { shape, ...parseShape(functionCodeStepSchema, raw, ctx) };
    }
    case 'http':
      return { shape, ...parseShape(httpStepSchema, raw, ctx) };
    case 'llm':
      return { shape, ...parseShape(llmStepSchema, raw, ctx) };
    case 'orchestrator':
      return { shape, ...parseShape(orchestratorStepSchema, raw, ctx) };
    case 'checkpoint':
      return { shape, ...parseShape(checkpointStepSchema, raw, ctx) };
    case undefined: {
      const type = raw['type'];
      if (type === undefined) {
        ctx.addIssue({ code: 'custom', message: 'must have an agent or a type' });
      } else if (typeof type === 'string' && (STEP_TYPES as readonly string[]).includes(type)) {
        ctx.addIssue({ code: 'custom', message: `type ${type} needs an agent` });
      } else {
        ctx.addIssue({
          code: 'custom',
          path: ['type'],
          message: `must be one of ${[...STEP_TYPES, 'a2a'].join(', ')} (got ${JSON.stringify(type)})`,
        });
      }
      return z.NEVER;
    }
  }
});

/** The whole document. */
export const definitionSchema = z.strictObject({
  slug: z.string().regex(SLUG_PATTERN),
  version: z.number().int().positive().max(2_147_483_647, { error: 'must be at most 2147483647' }),
  name: z.string().min(1),
  description: z.string().optional(),
  input: jsonSchemaObject,
  steps: z.array(stepSchema).min(1),
  output: z.unknown().optional(),
  concurrency: z
    .strictObject({
      limit: z.number().int().min(1).max(MAX_CONCURRENCY_LIMIT),
      key: z.string().min(1).max(4096).optional(),
    })
    .optional(),
});

/** A document after shape validation (before cross-field checks). */
export type DefinitionDocument = z.output<typeof definitionSchema>;
