/**
 * Observability hooks of the workers. One step attempt (one wrapper around the agent call in
 * `step-processor.ts`):
 * the `baton_step_duration_seconds{agent_type,outcome}` histogram and, when tracing is on, a
 * `step <stepId>` span (`baton.run_id`, `baton.step_id`, `baton.attempt`, `baton.agent_type`,
 * `baton.item` for a fan-out item) whose parent is the trace context stored with the run, so the
 * attempt joins the run's one trace in whichever worker runs it. (Webhook deliveries are counted
 * by the webhook handler, `webhook-processor.ts`.)
 */
import {
  CancelledError,
  TimedOutError,
  contextFromCarrier,
  inSpan,
  observeStepDuration,
  tracingEnabled,
  type StepOutcome,
} from '../lib/index.js';
import { runTraceCarrier } from '../services/store/index.js';
import type { WorkerDeps } from './deps.js';

/** Which attempt is observed. */
export interface ObservedAttempt {
  runId: string;
  stepId: string;
  attempt: number;
  /** The step's type (`context`, `api`, `tool`, `function`, `orchestrator`): the `agent_type` label. */
  agentType: string;
  /** Index of a fan-out item, if the attempt runs one. */
  item?: number;
}

/** Runs whose trace carrier this process has read (a run's carrier never changes). */
const carriers = new Map<string, Record<string, string> | null>();
/** How many runs' carriers are kept (oldest dropped first). */
const CARRIER_CACHE_MAX = 2000;

async function carrierOf(deps: WorkerDeps, runId: string): Promise<Record<string, string> | null> {
  const known = carriers.get(runId);
  if (known !== undefined) return known;
  const carrier = (await runTraceCarrier(deps.database.db, runId)) ?? null;
  if (carriers.size >= CARRIER_CACHE_MAX) carriers.delete(carriers.keys().next().value ?? '');
  carriers.set(runId, carrier);
  return carrier;
}

/** The `outcome` label of an attempt that threw `err`. */
export function outcomeOf(err: unknown): StepOutcome {
  if (err instanceof TimedOutError) return 'timed_out';
  if (err instanceof CancelledError) return 'cancelled';
  return 'failed';
}

/**
 * Run one attempt's agent call `fn`, timed into the step histogram and (tracing on) inside the
 * attempt's span. The result or error of `fn` passes through unchanged.
 */
export async function observeAttempt<T>(deps: WorkerDeps, who: ObservedAttempt, fn: () => Promise<T>): Promise<T> {
  // Tracing must never fail a step: without its carrier the span starts a trace of its own.
  const carrier = tracingEnabled() ? await carrierOf(deps, who.runId).catch(() => null) : undefined;
  const run =
    carrier === undefined
      ? fn
      : () => {
          const attributes = {
            'baton.run_id': who.runId,
            'baton.step_id': who.stepId,
            'baton.attempt': who.attempt,
            'baton.agent_type': who.agentType,
            ...(who.item === undefined ? {} : { 'baton.item': who.item }),
          };
          return inSpan(`step ${who.stepId}`, { parent: contextFromCarrier(carrier), attributes }, fn);
        };
  const started = process.hrtime.bigint();
  const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
  try {
    const result = await run();
    observeStepDuration(who.agentType, 'completed', seconds());
    return result;
  } catch (err) {
    observeStepDuration(who.agentType, outcomeOf(err), seconds());
    throw err;
  }
}
