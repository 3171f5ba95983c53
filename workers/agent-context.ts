/**
 * The {@link AgentContext} of one step attempt: what its agent may read (the allow-listed
 * environment, declared secrets), reach (HTTP under the outbound policy) and record (assets,
 * deliverables, progress) — each bound to this run, step and attempt.
 */
import type { AgentContext, AgentSpec } from '../agents/index.js';
import { ValidationError, bindTraceContext, registerSensitiveValues, type Logger } from '../lib/index.js';
import { reportProgress, requestAgentApproval, type AttemptRun } from '../services/engine/index.js';
import { createDeliverable, loadSecrets, saveAsset } from '../services/store/index.js';
import type { WorkerDeps } from './deps.js';

/** Who is running: the attempt's identity and its run. */
export interface AttemptIdentity {
  runId: string;
  stepId: string;
  attempt: number;
  generation: number;
  idempotencyKey: string;
  run: AttemptRun;
  logger: Logger;
  signal: AbortSignal;
  /**
   * Awaited before anything the attempt does outside the worker (HTTP, assets, deliverables,
   * progress, approvals): records a deferred claim first (step-processor.ts), so that an effect
   * never happens for an attempt the history does not show.
   * @throws {CancelledError} when the claim was refused (the step changed meanwhile).
   */
  beforeEffect?: () => Promise<void>;
}

/**
 * Build the context for an attempt.
 * @param agent - the named agent version executing it, if any (its `env:` and `secrets:` apply).
 * @param sensitive - receives the agent's secret values (to be redacted from what the attempt reports).
 */
export async function buildAgentContext(deps: WorkerDeps, who: AttemptIdentity, agent: AgentSpec | undefined, sensitive: string[]): Promise<AgentContext> {
  const { config, database } = deps;
  const env: Record<string, string> = {};
  for (const name of agent?.env ?? []) {
    const value = config.agentEnv[name];
    if (value !== undefined) env[name] = value;
  }
  let secrets: Record<string, string | undefined> = {};
  if (agent && agent.secrets.length > 0) {
    secrets = await loadSecrets(database.db, config.secrets.key, who.run.organizationId, agent.secrets);
    const values = Object.values(secrets).filter((v): v is string => v !== undefined);
    registerSensitiveValues(values);
    sensitive.push(...values);
  }
  const owner = { organizationId: who.run.organizationId, runId: who.runId, stepId: who.stepId, attempt: who.attempt };
  const before = who.beforeEffect ?? (() => Promise.resolve());
  return {
    runId: who.runId,
    stepId: who.stepId,
    attempt: who.attempt,
    idempotencyKey: who.idempotencyKey,
    signal: who.signal,
    logger: who.logger,
    sql: database.sql,
    llm: config.llm,
    run: { id: who.runId, definition: who.run.definition },
    env: Object.freeze(env),
    secrets: Object.freeze(secrets),
    // observability hook: bound to the attempt's span (function steps call back from a worker thread).
    http: bindTraceContext(async (request: Parameters<WorkerDeps['http']>[0]) => {
      await before();
      return deps.http({ ...request, signal: request.signal ?? who.signal });
    }),
    assets: {
      saveBuffer: async (data, meta) => {
        await before();
        return saveAsset(database.db, { ...owner, ...meta, data }, config.steps.assetMaxBytes);
      },
    },
    deliverables: {
      create: async (deliverable) => {
        await before();
        return createDeliverable(database.db, { ...owner, ...deliverable });
      },
    },
    progress: async (fraction, message) => {
      await before();
      return reportProgress(deps, { runId: who.runId, stepId: who.stepId, generation: who.generation }, who.attempt, fraction, message);
    },
    approval: async (request) => {
      await before();
      return requestAgentApproval(deps, { runId: who.runId, stepId: who.stepId, generation: who.generation }, request, who.signal);
    },
    functions: deps.functions,
    moduleCode: (ref) => {
      const found = deps.modules.get(ref);
      if (!found) {
        const known = [...deps.modules.keys()].sort().join(', ') || 'none';
        return Promise.reject(new ValidationError(`unknown step module "${ref}" (known: ${known})`, { field: 'module' }));
      }
      return Promise.resolve(found.code);
    },
  };
}
