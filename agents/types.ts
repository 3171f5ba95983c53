/**
 * The contract between the engine and agents.
 *
 * Glossary:
 * - **definition**: a YAML orchestration (a DAG of steps), versioned per organization.
 * - **run**: one execution of a definition version with an input.
 * - **step**: one node of a run's DAG; executed by an agent or parked as a checkpoint.
 * - **attempt**: one execution of a step (retries, and re-deliveries after a crash, are new attempts).
 * - **agent type**: `context` (LLM), `api` (HTTP), `tool` (Postgres), `function` (sandboxed JS),
 *   `orchestrator` (sub-orchestrations); each has its own queue (`agent-<type>`).
 * - **agent implementation**: code in `agents/` for one agent type (e.g. `llm`, `http`, `sql`,
 *   `function`), configured by a catalog entry's `config:`.
 * - **named agent**: a versioned catalog entry (`agents/catalog/*.yaml`, or `POST /v1/agents`):
 *   name, type, implementation, config, `env:` allow-list and declared `secrets:`.
 * - **step module**: versioned function code (`name@version`) that steps and function agents share.
 * - **job / queue / worker**: BullMQ transport. Agents never see them.
 *
 * Agents import only `lib/` and this file. They receive everything else through
 * {@link AgentContext}.
 */
import type { Sql } from 'postgres';
import type { z } from 'zod';
import type { Logger } from '../lib/logger.js';
import type { OutboundHttp } from '../lib/index.js';

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

/** A stored asset, as `ctx.assets.saveBuffer` returns it. */
export interface AssetRef {
  /** Asset id (UUID); downloadable at `GET /v1/runs/:runId/assets/:id`. */
  id: string;
  /** Size in bytes. */
  bytes: number;
  /** Hex SHA-256 of the bytes. */
  sha256: string;
}

/** What `ctx.assets.saveBuffer` is told about the bytes. */
export interface AssetMeta {
  /** File name shown to people (e.g. `image-1.png`). */
  name: string;
  /** MIME type served as `Content-Type` (e.g. `image/png`). */
  mimeType: string;
}

/** A deliverable: a titled result of a run meant for people (a report, a set of images). */
export interface DeliverableInput {
  title: string;
  /** Free-form kind, e.g. `report`, `image-set`, `campaign`. */
  kind: string;
  /** JSON content (text, markdown, structured data). */
  content: unknown;
  /** Assets of the same run this deliverable refers to. */
  assetIds?: string[];
}

/** Limits of one function call. */
export interface FunctionLimits {
  /** Wall-clock budget for the call, in milliseconds (bounded by `FUNCTION_MAX_TIMEOUT_MS`). */
  timeoutMs: number;
  /** Memory budget of the isolate, in MiB (bounded by `FUNCTION_MAX_MEMORY_MB`). */
  memoryMb: number;
}

/** Runs function code (`function main(input, ctx)`) off the worker's event loop. */
export interface FunctionRunner {
  /**
   * Run `code`'s `main(input, ctx)` in a pooled worker thread; `ctx` is bridged to `context`
   * (env, secrets, http via `ctx.require('axios')`, assets, deliverables, progress, log).
   * @returns `main`'s result as JSON-parsed data.
   * @throws {TimedOutError} / {CancelledError} when `limits.timeoutMs` passes / `context.signal` aborts.
   * @throws {OutputTooLargeError} when the result's JSON exceeds the output cap.
   * @throws {MissingSecretError} when the code reads a declared secret that is not stored.
   * @throws {AgentError} when the code does not compile, throws, or exceeds its memory.
   */
  run(code: string, input: unknown, limits: FunctionLimits, context: AgentContext): Promise<unknown>;
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
  /** Postgres client for tool agents (each agent opens its own transaction). */
  sql: Sql;
  llm: LlmSettings;
  /** The run and the definition version it executes. */
  run: { id: string; definition: { slug: string; version: number } };
  /** The environment variables the agent allow-listed (`env:`) that are set. */
  env: Readonly<Record<string, string>>;
  /** The agent's declared secrets by name; `undefined` when declared but not stored. */
  secrets: Readonly<Record<string, string | undefined>>;
  /** Outgoing HTTP under the outbound policy (pass `signal` on each request). */
  http: OutboundHttp;
  assets: {
    /**
     * Persist bytes as an asset of this run and step.
     * @throws {OutputTooLargeError} above `ASSET_MAX_BYTES`.
     */
    saveBuffer(data: Uint8Array, meta: AssetMeta): Promise<AssetRef>;
  };
  deliverables: {
    /** Persist a deliverable of this run and step. */
    create(deliverable: DeliverableInput): Promise<{ id: string }>;
  };
  /**
   * Report progress (a `step.progress` event).
   * @param fraction - 0..1.
   */
  progress(fraction: number, message?: string): Promise<void>;
  /** The worker's function runtime (thread pool). */
  functions: FunctionRunner;
  /** Resolve a step module `name@version` to its code. @throws {ValidationError} when unknown. */
  moduleCode(ref: string): Promise<string>;
  /**
   * Open a Baton approval for this step and wait for its decision (polling Postgres; the step
   * stays `running`). Present only on workers.
   * @throws {CancelledError} when the run is cancelled or `signal` aborts while waiting.
   */
  approval?(request: AgentApprovalRequest): Promise<AgentApprovalDecision>;
}

/**
 * An approval an agent asks for while its step runs (e.g. the `a2a` step when the remote task
 * enters input-required): a Baton approval like a checkpoint's, decided through the approvals
 * API, whose decision the agent receives.
 */
export interface AgentApprovalRequest {
  /**
   * 0 for the first approval of this step attempt, 1 for the next, … (an agent may ask several
   * times; asking again with the same round returns the same approval, so a re-delivered job
   * finds the approval it opened).
   */
  round: number;
  /** Text shown to approvers. */
  prompt: string;
  /** JSON shown to approvers. */
  show?: unknown;
  /** Decisions offered (subset of continue, retry, abort). */
  decisions: Array<'continue' | 'retry' | 'abort'>;
  /** Deadline for a decision, in milliseconds; past it the approval expires and answers `abort`. */
  timeoutMs: number;
}

/** The outcome of an {@link AgentApprovalRequest}. */
export interface AgentApprovalDecision {
  approvalId: string;
  decision: 'continue' | 'retry' | 'abort';
  /** The approver's comment, or null. */
  comment: string | null;
  /** Data sent with the decision (any JSON), or null. */
  data: unknown;
  /** Who decided (`user:…`, `service:…`, `system:timeout` when it expired). */
  decidedBy: string | null;
}

/**
 * Code for one agent type, configured by catalog entries. `run` receives the entry's parsed
 * `config` (validated by {@link AgentImplementation.config} when the catalog is loaded).
 */
export interface AgentImplementation<C = unknown> {
  /** Registry key named by a catalog entry's `implementation:` (e.g. `llm`, `http`, `sql`). */
  name: string;
  type: AgentType;
  description: string;
  /** zod schema of the entry's `config:`. */
  config: z.ZodType<C>;
  /**
   * Execute one step attempt.
   * @param input - the step's mapped `with:` input (unknown until the implementation validates it).
   * @returns a JSON-serialisable output, stored in Postgres as the step's output.
   * @throws {ValidationError} when `input` is invalid (never retried).
   * @throws {RetryLaterError} on transient upstream failures (retried with backoff).
   * @throws {AgentError} when the task cannot succeed.
   */
  run(input: unknown, ctx: AgentContext, config: C): Promise<unknown>;
}

/** A named agent as the catalog declares it (one version). */
export interface AgentSpec {
  /** `^[a-z][a-z0-9-]*$`, e.g. `summarizer`. */
  name: string;
  type: AgentType;
  /** Positive integer; a run pins the version it started with. */
  version: number;
  description: string;
  /** The {@link AgentImplementation} it configures (default per type). */
  implementation: string;
  /** Parsed by the implementation's `config` schema. */
  config: Record<string, unknown>;
  /** Environment variables the agent may read through `ctx.env`. */
  env: string[];
  /** Secret names the agent may read through `ctx.secrets` (and its config's `${{ secrets.X }}`). */
  secrets: string[];
}

/**
 * @deprecated kept while the agent layer moves to catalog entries: a configured agent whose
 * `run` has its config bound.
 */
export interface NamedAgent {
  name: string;
  type: AgentType;
  description: string;
  run(input: unknown, ctx: AgentContext): Promise<unknown>;
}

