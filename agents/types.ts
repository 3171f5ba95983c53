/**
 * The contract between the engine and agents.
 *
 * Glossary:
 * - **definition**: a YAML orchestration (a DAG of steps), versioned per organization.
 * - **run**: one execution of a definition version with an input.
 * - **step**: one node of a run's DAG; executed by an agent or parked as a checkpoint.
 * - **attempt**: one execution of a step (retries, and re-deliveries after a crash, are new attempts).
 * - **agent**: named, configured code of one agent type that turns a step's input into its output.
 * - **agent type**: `context` (LLM), `api` (HTTP), `tool` (Postgres), `function` (sandboxed JS),
 *   `orchestrator` (sub-orchestrations); each has its own queue (`agent-<type>`).
 * - **job / queue / worker**: BullMQ transport. Agents never see them.
 *
 * Agents import only `lib/` and this file. They receive everything else through
 * {@link AgentContext}.
 */
import type { Sql } from 'postgres';
import type { Logger } from '../lib/logger.js';

/** Agent types; each is served by the queue `agent-<type>`. */
export const AGENT_TYPES = ['context', 'api', 'tool', 'function', 'orchestrator'] as const;
export type AgentType = (typeof AGENT_TYPES)[number];

/** LLM endpoint settings (from `LLM_BASE_URL`, `LLM_API_KEY`, `LLM_MODEL`). */
export interface LlmSettings {
  /** OpenAI-compatible base URL (e.g. `https://api.openai.com/v1`); unset → local provider. */
  baseUrl: string | undefined;
  apiKey: string | undefined;
  model: string;
  /** Per-request timeout in milliseconds. */
  timeoutMs: number;
}

/** What an agent may use while it runs one step attempt. */
export interface AgentContext {
  runId: string;
  stepId: string;
  /** 1-based attempt number of this execution of the step. */
  attempt: number;
  /**
   * Stable for every attempt of the same step generation: `<runId>.<stepId>.<generation>`.
   * Side-effecting agents must forward it (e.g. as an `Idempotency-Key` header) so that a
   * re-delivered step does not repeat its effect.
   */
  idempotencyKey: string;
  /** Aborted when the run is cancelled, the step times out or the worker shuts down. */
  signal: AbortSignal;
  logger: Logger;
  /** Postgres client for tool agents (each agent opens its own read-only transaction). */
  sql: Sql;
  llm: LlmSettings;
}

/** A configured, named agent such as `summarizer` or `postgres-agent`. */
export interface NamedAgent {
  name: string;
  type: AgentType;
  description: string;
  /**
   * Execute one step attempt.
   * @param input - the step's mapped `with:` input (unknown until the agent validates it).
   * @returns a JSON-serialisable output, stored in Postgres as the step's output.
   * @throws {ValidationError} when `input` is invalid (never retried).
   * @throws {RetryLaterError} on transient upstream failures (retried with backoff).
   * @throws {AgentError} when the task cannot succeed.
   */
  run(input: unknown, ctx: AgentContext): Promise<unknown>;
}
