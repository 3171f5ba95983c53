/**
 * Handlers of the agent queues' jobs. A step job claims its step, runs its agent and records the
 * result; the engine queues the successors that became ready (as children of the root, while
 * this job is still active). Parent steps run their children as BullMQ child jobs and wait:
 * - a `foreach:` step adds one `item` job per item (sliding window of `concurrency`);
 * - an `orchestrator` step starts a child run whose root job is its child.
 */
import { validateModuleInput, type AgentContext, type AgentImplementation, type AgentSpec, type SubrunConfig } from '../agents/index.js';
import { AgentError, CancelledError, OutputTooLargeError, Redactor, TimedOutError, ValidationError, dottedPath, jsonProblem, type Logger } from '../lib/index.js';
import { queueForStepType, type Directive, type JobContext, type JobHandler } from '../queues/index.js';
import { evaluateExpression, evaluateMapping, type ExpressionScope, type StepSpec } from '../definitions/index.js';
import { agentVersion } from '../services/store/index.js';
import {
  advanceFanout,
  advanceSubrun,
  advanceSubruns,
  isParentStep,
  type SubrunPlan,
  type AttemptRun,
  type DeferredClaim,
  type StepStart,
  beginItem,
  claimDeferred,
  beginStep,
  completeStep,
  failStep,
  finishItem,
} from '../services/engine/index.js';
import { buildAgentContext } from './agent-context.js';
import type { WorkerDeps } from './deps.js';
import { ack, isInfrastructureError, planFailure } from './failure.js';
import { observeAttempt } from './observability.js';

/** The named agent version a step runs (pinned by the run; code-registered agents have none). */
async function agentSpecOf(deps: WorkerDeps, spec: StepSpec, run: AttemptRun): Promise<AgentSpec | undefined> {
  if (spec.kind !== 'agent' || deps.agents.has(spec.agent)) return undefined;
  const version = run.agentVersions[spec.agent];
  if (version === undefined) throw new AgentError(`agent "${spec.agent}" is not pinned by this run (unknown to its organization)`);
  return agentVersion(deps.database.db, run.organizationId, spec.agent, version);
}

function implementationOf(deps: WorkerDeps, name: string): AgentImplementation {
  const implementation = deps.implementations.get(name);
  if (!implementation) throw new AgentError(`agent implementation "${name}" is not available on this worker`);
  return implementation;
}

/**
 * Validate a step module's input against the module's `input` JSON Schema before any code runs.
 * @throws {ValidationError} naming the field (never retried); unknown modules fail later in `moduleCode`.
 */
function checkModuleInput(deps: WorkerDeps, ref: string, input: unknown): void {
  const module = deps.modules.get(ref);
  if (module) validateModuleInput(module, input);
}

/** Run one attempt's work for a step kind that agents execute. */
async function execute(deps: WorkerDeps, spec: StepSpec, agent: AgentSpec | undefined, input: unknown, ctx: AgentContext): Promise<unknown> {
  switch (spec.kind) {
    case 'function-code': {
      if (spec.module !== undefined) checkModuleInput(deps, spec.module, input);
      const code = spec.code ?? (await ctx.moduleCode(spec.module ?? ''));
      const timeoutMs = Math.min(spec.limits.timeoutMs, spec.timeoutMs ?? Number.POSITIVE_INFINITY);
      return ctx.functions.run(code, input, { timeoutMs, memoryMb: spec.limits.memoryMb }, ctx);
    }
    case 'http': {
      const http = implementationOf(deps, 'http');
      const request = input !== null && typeof input === 'object' && !Array.isArray(input) ? input : {};
      return http.run({ ...request, ...(spec.okStatus.length > 0 ? { okStatus: spec.okStatus } : {}) }, ctx, http.config.parse({}));
    }
    case 'llm': {
      const llm = implementationOf(deps, 'llm');
      return llm.run(input, ctx, llm.config.parse({}));
    }
    case 'agent': {
      const coded = deps.agents.get(spec.agent);
      if (coded) return coded.run(input, ctx);
      if (!agent) throw new AgentError(`agent "${spec.agent}" is not available on this worker`);
      const implementation = implementationOf(deps, agent.implementation);
      const config = implementation.config.parse(agent.config);
      const module = (config as { module?: unknown } | null)?.module;
      if (agent.type === 'function' && typeof module === 'string') checkModuleInput(deps, module, input);
      return implementation.run(input, ctx, config);
    }
    default:
      throw new AgentError(`step ${spec.id}: ${spec.kind} steps are not run by agents`);
  }
}

/** What one attempt runs with. */
interface Attempt {
  runId: string;
  stepId: string;
  generation: number;
  attempt: number;
  idempotencyKey: string;
  run: AttemptRun;
  logger: Logger;
  /** Secret and write-only input values to redact from what the attempt reports (grows as secrets load). */
  sensitive: string[];
  /** Records a deferred claim before the attempt's first effect (see `AttemptIdentity`). */
  beforeEffect?: () => Promise<void>;
}

/**
 * Run the agent for one attempt with the step's timeout, and return its JSON output (redacted,
 * and within `STEP_OUTPUT_MAX_BYTES`).
 * @throws {TimedOutError} when the step's `timeout` passed (the agent's signal was aborted).
 * @throws {UnavailableError} when the job's lock was lost (an infrastructure error: nothing is recorded).
 * @throws {OutputTooLargeError} when the output's JSON exceeds `STEP_OUTPUT_MAX_BYTES`.
 * @throws {ValidationError} when a string or key of the output holds a NUL or a lone surrogate
 *   (Postgres cannot store either; `field` is the path, e.g. `output.text`).
 */
async function runAgent(deps: WorkerDeps, spec: StepSpec, input: unknown, who: Attempt, signal: AbortSignal | undefined): Promise<unknown> {
  const timeout = spec.timeoutMs ? AbortSignal.timeout(spec.timeoutMs) : undefined;
  // AbortSignal.any only when there are two to combine (it is costly on the hot path).
  const own = signal ?? new AbortController().signal;
  const stepSignal = timeout ? AbortSignal.any([own, timeout]) : own;
  try {
    const agent = await agentSpecOf(deps, spec, who.run);
    const ctx = await buildAgentContext(deps, { ...who, signal: stepSignal }, agent, who.sensitive);
    const output = await execute(deps, spec, agent, input, ctx);
    if (stepSignal.aborted) throw new CancelledError(`step aborted: ${String(stepSignal.reason)}`);
    const json = JSON.stringify(output ?? null);
    const limit = deps.config.steps.outputMaxBytes;
    if (Buffer.byteLength(json, 'utf8') > limit) {
      throw new OutputTooLargeError(`step output is ${Buffer.byteLength(json, 'utf8')} bytes, more than STEP_OUTPUT_MAX_BYTES (${limit})`);
    }
    const problem = jsonProblem(output, Number.POSITIVE_INFINITY); // strings only: outputs may nest deeper than inputs
    if (problem) {
      const field = dottedPath(['output', ...problem.path], 'output');
      throw new ValidationError(`${field}: ${problem.message}`, { field });
    }
    return new Redactor(who.sensitive).redact(JSON.parse(json) as unknown);
  } catch (err) {
    // A lost lock (queues/workers.ts) aborts with an infrastructure error: not the work's failure.
    if (stepSignal.aborted && isInfrastructureError(stepSignal.reason)) throw stepSignal.reason;
    if (timeout?.aborted) throw new TimedOutError(`step ${spec.id} timed out after ${spec.timeoutMs} ms`, { cause: err });
    throw err;
  }
}

/**
 * Remove sensitive values from an error's message before it is recorded, logged or handed to
 * BullMQ as the failure reason (the class, and so the retry decision, is kept).
 */
function redactError(err: unknown, sensitive: readonly string[]): unknown {
  if (sensitive.length === 0 || !(err instanceof Error)) return err;
  const redactor = new Redactor([...sensitive]);
  err.message = redactor.redactText(err.message);
  if (typeof err.stack === 'string') err.stack = redactor.redactText(err.stack);
  return err;
}

/**
 * The child runs of an orchestrator named agent's step, from its pinned config
 * (`{definition, version?, foreach?, input?, output?}`, see the `subrun` implementation).
 */
async function planAgentSubruns(
  deps: WorkerDeps,
  spec: StepSpec & { kind: 'agent' },
  input: unknown,
  run: AttemptRun,
): Promise<{ plan: SubrunPlan; mapOutput: (outputs: unknown) => Promise<unknown> }> {
  const agent = await agentSpecOf(deps, spec, run);
  if (!agent) throw new AgentError(`orchestrator agent "${spec.agent}" has no catalog entry`);
  const config = implementationOf(deps, agent.implementation).config.parse(agent.config) as SubrunConfig;
  const scope = (fields: Record<string, unknown>) => ({ steps: {}, run: { id: '', definition: run.definition.slug }, input, ...fields }) as ExpressionScope;
  // `foreach` is JSONata over the step input itself (`$` is the step input).
  const items = config.foreach === undefined ? undefined : await evaluateExpression(config.foreach, input as ExpressionScope);
  if (items !== undefined && items !== null && !Array.isArray(items)) {
    throw new ValidationError(`agent ${agent.name}: foreach must yield a list, got ${typeof items}`, { field: 'foreach' });
  }
  const list = items === undefined ? undefined : items === null ? [] : (items as unknown[]);
  const inputs = list === undefined
    ? [config.input === undefined ? input : await evaluateMapping(config.input, scope({}))]
    : await Promise.all(list.map((item, index) => (config.input === undefined ? Promise.resolve(item) : evaluateMapping(config.input, scope({ item, index })))));
  return {
    plan: { slug: config.definition, ...(config.version === undefined ? {} : { version: config.version }), inputs, single: list === undefined },
    mapOutput: async (outputs) => {
      if (config.output === undefined) return outputs;
      const fields = list === undefined ? { input, output: outputs } : { input, outputs };
      return evaluateExpression(config.output, fields as unknown as ExpressionScope);
    },
  };
}

/** Handle a fan-out item's job: run the step's agent on one item. */
export function createItemHandler(deps: WorkerDeps): JobHandler<'item'> {
  return async (job) => {
    const { data } = job;
    const start = await beginItem(deps, data);
    if (start.kind === 'inactive') return ack({ ignored: start.reason });
    const logger = deps.logger.child({ runId: data.runId, stepId: data.stepId, item: data.index, jobId: job.id });
    const who: Attempt = { runId: data.runId, stepId: data.stepId, generation: data.generation, attempt: start.attempt, idempotencyKey: start.idempotencyKey, run: start.run, logger, sensitive: start.sensitive };
    try {
      const output = await observeAttempt(deps, { runId: data.runId, stepId: data.stepId, attempt: start.attempt, agentType: start.spec.type, item: data.index }, () => runAgent(deps, start.spec, start.input, who, job.signal));
      await finishItem(deps, data, { output });
      return ack({ index: data.index });
    } catch (err) {
      if (isInfrastructureError(err)) throw redactError(err, who.sensitive);
      const plan = planFailure(redactError(err, who.sensitive), job);
      await finishItem(deps, data, { error: plan.error, final: plan.final });
      logger[plan.final ? 'error' : 'warn']({ err, final: plan.final }, 'item attempt failed');
      return plan.directive;
    }
  };
}

/**
 * Handle a step's job (agent queues): claim the step, run its agent, record the result — the
 * engine enqueues the successors. Parent steps run their children as BullMQ child jobs and wait
 * for them (`wait-children`): a fan-out's items, or the child runs of a sub-orchestration.
 */
export function createStepHandler(deps: WorkerDeps): JobHandler<'step'> {
  const deferClaim = deps.config.steps.claimDeferMs > 0;
  const handle = async (job: JobContext<'step'>, defer: boolean): Promise<Directive> => {
    const { data } = job;
    const start = await beginStep(deps, data, job.id, { deferClaim: defer, attemptsMade: job.attemptsMade });
    switch (start.kind) {
      case 'inactive':
        return ack({ ignored: start.reason });
      case 'waiting':
        return ack({ ignored: 'step is waiting for approval' });
      case 'finished':
        return ack({ alreadyFinished: true });
      case 'cached':
        return ack({ cacheHit: true });
      case 'run':
      case 'resume':
        break;
    }

    const { spec, attempt } = start;
    const logger = deps.logger.child({ runId: data.runId, stepId: data.stepId, attempt, jobId: job.id });
    const who: Attempt = { runId: data.runId, stepId: data.stepId, generation: data.generation, attempt, idempotencyKey: start.idempotencyKey, run: start.run, logger, sensitive: start.sensitive };
    if (start.kind === 'run' && start.claim) {
      if (await claimMayWait(deps, spec, start.run)) {
        const outcome = await runDeferred(deps, job, { ...start, claim: start.claim }, who);
        return outcome === 'changed' ? handle(job, false) : outcome;
      }
      // This agent may reach Postgres itself: its attempt is recorded before it starts.
      if (!(await claimDeferred(deps, data, start.claim, 0))) return handle(job, false);
    }
    try {
      if (isParentStep(spec)) {
        // Make sure the children exist, then wait for them (the handler runs again when they are done).
        const parentQueue = deps.queues.qualifiedName(queueForStepType(spec.type));
        if (spec.kind === 'agent' && spec.type === 'orchestrator') {
          const agentPlan = await planAgentSubruns(deps, spec, start.input, who.run);
          const state = await advanceSubruns(deps, data, attempt, agentPlan.plan, parentQueue, agentPlan.mapOutput);
          return state.kind === 'done' ? ack({ childRunId: state.childRunId }) : { kind: 'wait-children' };
        }
        if (spec.kind === 'orchestrator') {
          const state = await advanceSubrun(deps, data, attempt, spec, start.input, parentQueue);
          return state.kind === 'done' ? ack({ childRunId: state.childRunId }) : { kind: 'wait-children' };
        }
        const items = Array.isArray(start.input) ? (start.input as unknown[]) : [];
        const state = await advanceFanout(deps, data, attempt, spec, items);
        return state.kind === 'done' ? ack({ items: items.length }) : { kind: 'wait-children' };
      }

      const output = await observeAttempt(deps, { runId: data.runId, stepId: data.stepId, attempt, agentType: spec.type }, () => runAgent(deps, spec, start.input, who, job.signal));
      const record = await completeStep(deps, data, attempt, output, {}, start.run);
      logger.info({ recorded: record.recorded, next: record.queued }, 'step completed');
      return ack({ attempt, recorded: record.recorded });
    } catch (err) {
      return recordFailure(deps, job, attempt, who, err);
    }
  };
  return (job) => handle(job, deferClaim);
}

/**
 * Record a recorded attempt's failure and answer its job's directive (retry or fail).
 * @throws the error itself (redacted) when it is an infrastructure error: nothing is recorded
 *   and the job runs again (queues/workers.ts).
 */
async function recordFailure(deps: WorkerDeps, job: JobContext<'step'>, attempt: number, who: Attempt, err: unknown): Promise<Directive> {
  if (isInfrastructureError(err)) throw redactError(err, who.sensitive);
  const plan = planFailure(redactError(err, who.sensitive), job);
  await failStep(deps, job.data, attempt, plan.error, plan.final, plan.retryDelayMs);
  who.logger[plan.final ? 'error' : 'warn']({ err, final: plan.final, retryDelayMs: plan.retryDelayMs }, 'step attempt failed');
  return plan.directive;
}

/** A plain step's start whose attempt is not recorded yet (`beginStep` with `deferClaim`). */
type DeferredStart = Extract<StepStart, { kind: 'run' }> & { claim: DeferredClaim };

/**
 * Run a plain step's agent at once and record its attempt later (services/engine/hot-path.ts,
 * `DeferredClaim`): when the agent is done within `STEP_CLAIM_DEFER_MS`, its claim and
 * completion are one transaction; otherwise (or when it failed) the attempt is claimed then, as
 * running since the agent started, and the outcome is recorded as for any attempt.
 * @returns the job's directive, or `'changed'` when the step or run changed since it was read
 *   and the agent's result was not recorded: the caller handles the job again on the general path.
 */
async function runDeferred(deps: WorkerDeps, job: JobContext<'step'>, start: DeferredStart, attemptOf: Attempt): Promise<Directive | 'changed'> {
  const { data } = job;
  const { spec, attempt, claim } = start;
  const startedAt = performance.now();
  const elapsed = (): number => performance.now() - startedAt;
  // The agent's own signal: aborted with the job's, or here when the claim is refused or fails.
  const local = new AbortController();
  const forward = (): void => local.abort(job.signal?.reason);
  if (job.signal?.aborted) forward();
  else job.signal?.addEventListener('abort', forward, { once: true });
  const refused = (): CancelledError => new CancelledError('the step changed before its attempt was recorded');
  let claiming: Promise<boolean> | undefined;
  const claimNow = (): Promise<boolean> =>
    (claiming ??= claimDeferred(deps, data, claim, elapsed()).then(
      (claimed) => {
        if (!claimed) local.abort(refused());
        return claimed;
      },
      (err: unknown) => {
        local.abort(err);
        throw err;
      },
    ));
  const who: Attempt = {
    ...attemptOf,
    beforeEffect: async () => {
      if (!(await claimNow())) throw refused();
    },
  };
  const outcome = observeAttempt(deps, { runId: data.runId, stepId: data.stepId, attempt, agentType: spec.type }, () => runAgent(deps, spec, start.input, who, local.signal)).then(
    (output) => ({ ok: true as const, output }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  let timer: NodeJS.Timeout | undefined;
  const early = await Promise.race([outcome, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), deps.config.steps.claimDeferMs)))]);
  clearTimeout(timer);
  try {
    // An infrastructure failure (e.g. the job's lock lost) records nothing: the job runs again.
    if (early && !early.ok && isInfrastructureError(early.err) && !claiming) throw early.err;
    // Still running, failed, or an effect already asked for it: the attempt is recorded now
    // (running since the agent started), and its outcome is recorded as any attempt's.
    if (!early?.ok || claiming) {
      if (!(await claimNow())) {
        await outcome;
        return 'changed';
      }
    }
    const settled = early ?? (await outcome);
    if (!settled.ok) throw settled.err;
    const record = await completeStep(deps, data, attempt, settled.output, {}, start.run, { claim, elapsedMs: elapsed() });
    if (claim.state === 'refused') return claim.optimistic ? 'changed' : recordOnGeneralPath(deps, job, settled.output, who.logger);
    who.logger.info({ recorded: record.recorded, next: record.queued }, 'step completed');
    return ack({ attempt, recorded: record.recorded });
  } catch (err) {
    return recordFailure(deps, job, attempt, who, err);
  } finally {
    job.signal?.removeEventListener('abort', forward);
  }
}

/**
 * Whether a step's claim may wait for its agent: not when the agent can reach Postgres through
 * `ctx.sql` (a `tool` agent, or one registered in code), where an effect could not wait for it.
 */
async function claimMayWait(deps: WorkerDeps, spec: StepSpec, run: AttemptRun): Promise<boolean> {
  switch (spec.kind) {
    case 'function-code':
    case 'http':
    case 'llm':
      return true;
    case 'agent': {
      if (spec.type === 'tool' || deps.agents.has(spec.agent)) return false;
      const agent = await agentSpecOf(deps, spec, run).catch(() => undefined);
      return agent !== undefined && agent.implementation !== 'sql';
    }
    default:
      return false;
  }
}

/**
 * A deferred attempt's agent succeeded but its claim was refused (the step or run changed since
 * it was read): let the general path decide, and record the output if it starts an attempt.
 */
async function recordOnGeneralPath(deps: WorkerDeps, job: JobContext<'step'>, output: unknown, logger: Logger): Promise<Directive> {
  const again = await beginStep(deps, job.data, job.id);
  if (again.kind !== 'run') return ack({ ignored: again.kind === 'inactive' ? again.reason : `step is ${again.kind}` });
  const record = await completeStep(deps, job.data, again.attempt, output, {}, again.run);
  logger.info({ recorded: record.recorded, next: record.queued }, 'step completed');
  return ack({ attempt: again.attempt, recorded: record.recorded });
}
