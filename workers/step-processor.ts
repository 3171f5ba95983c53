/** Processor of the agent queues: claim the step, run its agent, record, queue successors. */
import type { Job } from 'bullmq';
import { runInSandbox, type AgentContext } from '../agents/index.js';
import { AgentError, CancelledError, ValidationError } from '../lib/index.js';
import { StepJobData } from '../queues/index.js';
import type { StepSpec } from '../definitions/index.js';
import { beginStep, completeStep, failStep } from '../services/engine/index.js';
import type { WorkerDeps } from './deps.js';
import { isControlFlow, planFailure } from './failure.js';

/** Parse a job's payload; a malformed payload can never succeed. */
export function parseStepJob(job: Job): StepJobData {
  const parsed = StepJobData.safeParse(job.data);
  if (!parsed.success) throw new ValidationError(`job ${job.id}: invalid payload: ${parsed.error.message}`);
  return parsed.data;
}

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
      throw new AgentError(`step ${spec.id}: ${spec.kind} steps are not executable by agent workers yet`);
  }
}

/** Build the processor for `agent-*` queues. */
export function createStepProcessor(deps: WorkerDeps) {
  return async (job: Job, _token?: string, signal?: AbortSignal): Promise<Record<string, unknown>> => {
    const data = parseStepJob(job);
    const jobId = job.id ?? '';
    const start = await beginStep(deps, data, jobId);
    if (start.kind === 'inactive') return { ignored: start.reason };
    if (start.kind === 'finished') {
      await deps.queues.addStepJobs(data.runId, start.live);
      return { alreadyFinished: true };
    }
    if (start.kind === 'waiting') return { ignored: 'step is waiting for approval' };

    const logger = deps.logger.child({ runId: data.runId, stepId: data.stepId, attempt: start.attempt, jobId });
    const timeoutMs = start.spec.timeoutMs;
    const signals = [signal ?? new AbortController().signal];
    if (timeoutMs) signals.push(AbortSignal.timeout(timeoutMs));
    const stepSignal = AbortSignal.any(signals);
    const ctx: AgentContext = {
      runId: data.runId,
      stepId: data.stepId,
      attempt: start.attempt,
      idempotencyKey: start.idempotencyKey,
      signal: stepSignal,
      logger,
      sql: deps.database.sql,
      llm: deps.config.llm,
    };
    try {
      logger.debug('step started');
      let output = await execute(deps, start.spec, start.input, ctx);
      if (stepSignal.aborted) throw new CancelledError(`step aborted: ${String(stepSignal.reason)}`);
      output = JSON.parse(JSON.stringify(output ?? null)) as unknown;
      const record = await completeStep(deps, data, start.attempt, output);
      await deps.queues.addStepJobs(data.runId, record.ready);
      logger.info({ recorded: record.recorded, next: record.ready.map((r) => r.stepId) }, 'step completed');
      return { attempt: start.attempt, recorded: record.recorded };
    } catch (err) {
      if (isControlFlow(err)) throw err;
      const plan = planFailure(err, job);
      const record = await failStep(deps, data, start.attempt, plan.error, plan.final, plan.retryDelayMs);
      await deps.queues.addStepJobs(data.runId, record.ready);
      logger[plan.final ? 'error' : 'warn']({ err, final: plan.final, retryDelayMs: plan.retryDelayMs }, 'step attempt failed');
      throw plan.rethrow;
    }
  };
}
