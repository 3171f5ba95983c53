/**
 * Processor of the agent queues. A step job claims its step, runs its agent, records the result
 * and queues the successors that became ready (as children of the root, while still active).
 * Parent steps run their children as BullMQ child jobs and wait in `waiting-children`:
 * - a `foreach:` step adds one `item` job per item (sliding window of `concurrency`);
 * - an `orchestrator` step starts a child run whose root job is its child.
 */
import { DelayedError, WaitingChildrenError, type Job } from 'bullmq';
import { z } from 'zod';
import { runInSandbox, type AgentContext } from '../agents/index.js';
import { AgentError, CancelledError, TimedOutError, ValidationError } from '../lib/index.js';
import { StepJobData, queueForStepType, type StepJobSpec } from '../queues/index.js';
import type { StepSpec } from '../definitions/index.js';
import {
  advanceFanout,
  advanceSubrun,
  beginItem,
  beginStep,
  completeStep,
  failStep,
  finishItem,
  type StepRecord,
} from '../services/engine/index.js';
import type { WorkerDeps } from './deps.js';
import { isControlFlow, isInfrastructureError, planFailure } from './failure.js';

/** Parse a job's payload; a malformed payload can never succeed. */
export function parseStepJob(job: Job): StepJobData {
  const parsed = StepJobData.safeParse(job.data);
  if (!parsed.success) throw new ValidationError(`job ${job.id}: invalid payload: ${parsed.error.message}`);
  return parsed.data;
}

const ItemJobData = StepJobData.extend({ index: z.number().int().nonnegative() });

/** Passes of check → add children → wait before re-checking later. */
const MAX_PARENT_PASSES = 5;
/** Delay before a parent step with no pending children checks again, in milliseconds. */
const PARENT_RECHECK_MS = 1000;

async function execute(deps: WorkerDeps, spec: StepSpec, input: unknown, ctx: AgentContext): Promise<unknown> {
  switch (spec.kind) {
    case 'function-code':
      return runInSandbox(spec.code, input, {
        timeoutMs: spec.limits.timeoutMs,
        memoryBytes: spec.limits.memoryMb * 1024 * 1024,
        signal: ctx.signal,
        logger: ctx.logger,
      });
    case 'agent': {
      const agent = deps.agents.get(spec.agent);
      if (!agent) throw new AgentError(`agent "${spec.agent}" is not available on this worker`);
      return agent.run(input, ctx);
    }
    default:
      throw new AgentError(`step ${spec.id}: ${spec.kind} steps are not run by agents`);
  }
}

/**
 * Run the agent for one attempt with the step's timeout, and return its JSON output.
 * @throws {TimedOutError} when the step's `timeout` passed (the agent's signal was aborted).
 */
async function runAgent(
  deps: WorkerDeps,
  spec: StepSpec,
  input: unknown,
  base: Omit<AgentContext, 'signal' | 'sql' | 'llm'>,
  signal: AbortSignal | undefined,
): Promise<unknown> {
  const timeout = spec.timeoutMs ? AbortSignal.timeout(spec.timeoutMs) : undefined;
  const stepSignal = AbortSignal.any([signal ?? new AbortController().signal, ...(timeout ? [timeout] : [])]);
  const ctx: AgentContext = { ...base, signal: stepSignal, sql: deps.database.sql, llm: deps.config.llm };
  try {
    const output = await execute(deps, spec, input, ctx);
    if (stepSignal.aborted) throw new CancelledError(`step aborted: ${String(stepSignal.reason)}`);
    return JSON.parse(JSON.stringify(output ?? null)) as unknown;
  } catch (err) {
    if (timeout?.aborted) throw new TimedOutError(`step ${spec.id} timed out after ${spec.timeoutMs} ms`, { cause: err });
    throw err;
  }
}

function specOf(data: StepJobData, spec: StepSpec): StepJobSpec & { runId: string } {
  return { runId: data.runId, stepId: data.stepId, type: spec.type, generation: data.generation, attempts: spec.retry.attempts, backoffMs: data.backoffMs, maxDelayMs: data.maxDelayMs };
}

/** Build the processor for `agent-*` queues (step jobs and fan-out `item` jobs). */
export function createStepProcessor(deps: WorkerDeps) {
  const addReady = (data: StepJobData, record: Pick<StepRecord, 'ready' | 'rootJobId'>) =>
    deps.queues.addStepJobs(record.rootJobId, data.runId, record.ready);

  const processItem = async (job: Job, signal?: AbortSignal): Promise<Record<string, unknown>> => {
    const parsed = ItemJobData.safeParse(job.data);
    if (!parsed.success) throw new ValidationError(`job ${job.id}: invalid item payload`);
    const data = parsed.data;
    const start = await beginItem(deps, data);
    if (start.kind === 'inactive') return { ignored: start.reason };
    const parentJobId = (job.id ?? '').replace(/\.i\d+$/, '');
    const logger = deps.logger.child({ runId: data.runId, stepId: data.stepId, item: data.index, jobId: job.id });
    try {
      const output = await runAgent(deps, start.spec, start.input, { runId: data.runId, stepId: data.stepId, attempt: start.attempt, idempotencyKey: start.idempotencyKey, logger }, signal);
      const next = await finishItem(deps, data, { output });
      await deps.queues.addItemJobs(parentJobId, specOf(data, start.spec), next);
      return { index: data.index };
    } catch (err) {
      if (isControlFlow(err) || isInfrastructureError(err)) throw err;
      const plan = planFailure(err, job);
      const next = await finishItem(deps, data, { error: plan.error, final: plan.final });
      await deps.queues.addItemJobs(parentJobId, specOf(data, start.spec), next);
      logger[plan.final ? 'error' : 'warn']({ err, final: plan.final }, 'item attempt failed');
      throw plan.rethrow;
    }
  };

  return async (job: Job, token?: string, signal?: AbortSignal): Promise<Record<string, unknown>> => {
    if (job.name === 'item') return processItem(job, signal);
    const data = parseStepJob(job);
    const jobId = job.id ?? '';
    const start = await beginStep(deps, data, jobId);
    switch (start.kind) {
      case 'inactive':
        return { ignored: start.reason };
      case 'waiting':
        return { ignored: 'step is waiting for approval' };
      case 'finished':
        await deps.queues.addStepJobs(start.rootJobId, data.runId, start.live);
        return { alreadyFinished: true };
      case 'cached':
        await addReady(data, start);
        return { cacheHit: true };
      case 'run':
      case 'resume':
        break;
    }

    const { spec, attempt } = start;
    const logger = deps.logger.child({ runId: data.runId, stepId: data.stepId, attempt, jobId });
    try {
      // Parent steps: make sure their children exist, then wait for them.
      if (spec.kind === 'orchestrator' || (spec.kind !== 'checkpoint' && spec.foreach !== undefined)) {
        for (let pass = 0; pass < MAX_PARENT_PASSES; pass += 1) {
          if (spec.kind === 'orchestrator') {
            const state = await advanceSubrun(deps, data, attempt, spec, start.input, deps.queues.qualifiedName(queueForStepType(spec.type)));
            if (state.kind === 'done') {
              await addReady(data, state);
              return { childRunId: state.childRunId };
            }
          } else {
            const items = Array.isArray(start.input) ? (start.input as unknown[]) : [];
            const state = await advanceFanout(deps, data, attempt, spec, items);
            if (state.kind === 'done') {
              await addReady(data, state);
              return { items: items.length };
            }
            await deps.queues.addItemJobs(jobId, specOf(data, spec), state.indexes);
          }
          if (await job.moveToWaitingChildren(token ?? '')) throw new WaitingChildrenError();
        }
        // Children unfinished but none attached (e.g. a child run re-created without us after
        // Redis lost data): look again shortly, without spending an attempt.
        logger.warn('parent step has no pending children; checking again in 1 s');
        await job.moveToDelayed(Date.now() + PARENT_RECHECK_MS, token);
        throw new DelayedError();
      }

      const output = await runAgent(deps, spec, start.input, { runId: data.runId, stepId: data.stepId, attempt, idempotencyKey: start.idempotencyKey, logger }, signal);
      const record = await completeStep(deps, data, attempt, output);
      await addReady(data, record);
      logger.info({ recorded: record.recorded, next: record.ready.map((r) => r.stepId) }, 'step completed');
      return { attempt, recorded: record.recorded };
    } catch (err) {
      if (isControlFlow(err) || isInfrastructureError(err)) throw err;
      const plan = planFailure(err, job);
      const record = await failStep(deps, data, attempt, plan.error, plan.final, plan.retryDelayMs);
      await addReady(data, record);
      logger[plan.final ? 'error' : 'warn']({ err, final: plan.final, retryDelayMs: plan.retryDelayMs }, 'step attempt failed');
      throw plan.rethrow;
    }
  };
}
