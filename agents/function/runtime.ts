/**
 * The function runtime: a pool of `node:worker_threads` Workers, each running QuickJS
 * (`runtime-thread.ts`), so that function code never runs on the caller's event loop (where the
 * BullMQ worker renews its locks).
 *
 * - Calls queue FIFO while every thread is busy. A call's deadline (`limits.timeoutMs`) starts
 *   when a thread takes it; `context.signal` cancels it while queued or running. Time spent
 *   awaiting host calls (http, assets, …) counts toward the deadline.
 * - Stopping: at the deadline, or when `context.signal` aborts, the main thread sets the
 *   thread's shared abort flag (a `SharedArrayBuffer`), which the isolate's interrupt handler
 *   reads, and posts `stop` (for a thread waiting on host replies). A thread that has not
 *   answered {@link FunctionRuntimeOptions.graceMs} later is `terminate()`d and replaced.
 * - A thread that dies (out of heap under its `resourceLimits`, terminated) fails only its own
 *   call and is replaced.
 * - Host calls from the isolate arrive as messages and are served here with the step's
 *   `context` (`http` with `signal: context.signal` and the remaining time as its budget,
 *   `assets.saveBuffer`, `deliverables.create`, `progress`, `logger`).
 */
import { existsSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  AgentError,
  AppError,
  CancelledError,
  MissingSecretError,
  RetryLaterError,
  OutputTooLargeError,
  TimedOutError,
  ValidationError,
  isInfrastructureError,
  type Logger,
  type OutboundMethod,
  type OutboundRequest,
  type OutboundResponseType,
} from '../../lib/index.js';
import type { AgentContext, FunctionLimits, FunctionRunner } from '../types.js';
import {
  ABORT_CANCELLED,
  ABORT_NONE,
  ABORT_TIMEOUT,
  type DoneMessage,
  type FromThread,
  type HostErrorShape,
  type HostMessage,
  type IsolateInfo,
  type ReplyMessage,
  type ThreadData,
  type ToThread,
} from './runtime-protocol.js';

/** Options of {@link createFunctionRuntime}. */
export interface FunctionRuntimeOptions {
  /** Worker threads in the pool (`config.functions.threads`). */
  threads: number;
  /** Largest `limits.timeoutMs` accepted, in milliseconds (`config.functions.maxTimeoutMs`). */
  maxTimeoutMs: number;
  /** Largest `limits.memoryMb` accepted, in MiB (`config.functions.maxMemoryMb`). */
  maxMemoryMb: number;
  /** Largest output (its JSON text, UTF-8), in bytes (`config.steps.outputMaxBytes`). */
  outputMaxBytes: number;
  /** Receives thread lifecycle warnings (the calls' own lines go to `context.logger`). */
  logger: Logger;
  /**
   * How long a thread may take to answer after its abort flag was set before it is terminated
   * and replaced, in milliseconds. Default 1000.
   */
  graceMs?: number;
  /** V8 old-generation heap of each thread, in MiB (`resourceLimits`). Default 128. */
  threadHeapMb?: number;
}

/** A {@link FunctionRunner} backed by a thread pool; `close()` stops it. */
export interface FunctionRuntime extends FunctionRunner {
  /**
   * Reject queued and running calls with {@link CancelledError} and terminate every thread.
   * Later `run` calls reject with `CancelledError`.
   */
  close(): Promise<void>;
}

const DEFAULT_GRACE_MS = 1000;
const DEFAULT_THREAD_HEAP_MB = 128;
/** Wait before replacing a thread that failed to start, in milliseconds. */
const RESPAWN_DELAY_MS = 1000;
const OUTBOUND_METHODS: readonly OutboundMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'];
const RESPONSE_TYPES: readonly OutboundResponseType[] = ['json', 'text', 'arraybuffer'];

/** One queued or running call. */
interface Job {
  callId: number;
  code: string;
  inputJson: string;
  limits: FunctionLimits;
  context: AgentContext;
  resolve(value: unknown): void;
  reject(err: Error): void;
  /** Epoch ms; set when a thread takes the call. */
  deadline: number;
  timers: NodeJS.Timeout[];
  onAbort: () => void;
  settled: boolean;
  /**
   * The first infrastructure error (Baton's own Postgres or Redis) a host call of this job met:
   * if the code then fails, that error — not the code's — is the outcome, so the step is retried
   * as infrastructure instead of failing.
   */
  infrastructureError?: Error;
}

/** One thread of the pool. */
interface Slot {
  worker: Worker;
  flag: Int32Array;
  job: Job | undefined;
  /** Set once the slot is being replaced: its worker's events are ignored. */
  retired: boolean;
  /** The last `error` event of the worker (why it exited). */
  lastError: Error | undefined;
  /** The thread said `ready`: calls are dispatched to it from then on. */
  ready: boolean;
}

/**
 * How to start a thread: the compiled `runtime-thread.js` next to this file (`dist/`), or — when
 * running from the TypeScript sources under tsx (tests) — a bootstrap that registers tsx's loader
 * in the new thread first (loader hooks are per thread) and then imports `runtime-thread.ts`.
 */
function threadEntry(): { filename: URL | string; eval: boolean } {
  const js = new URL('./runtime-thread.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return { filename: js, eval: false };
  const ts = new URL('./runtime-thread.ts', import.meta.url).href;
  // Resolved with require (import.meta.resolve is not there when tsx compiles this file to CJS).
  const tsxRoot = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const tsxApi = pathToFileURL(join(tsxRoot, 'dist', 'esm', 'api', 'index.mjs')).href;
  return {
    filename: `import(${JSON.stringify(tsxApi)}).then((api) => { api.register(); return import(${JSON.stringify(ts)}); });`,
    eval: true,
  };
}

/**
 * Start a function runtime: `threads` worker threads running QuickJS.
 *
 * @param options - {@link FunctionRuntimeOptions}.
 * @returns a {@link FunctionRuntime}; its `run` implements {@link FunctionRunner.run}:
 *   resolves to `main`'s result (JSON-parsed).
 * @throws {RangeError} when `threads` is not a positive integer (a caller bug).
 */
export function createFunctionRuntime(options: FunctionRuntimeOptions): FunctionRuntime {
  const { threads, maxTimeoutMs, maxMemoryMb, outputMaxBytes, logger } = options;
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError('threads must be a positive integer');
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const threadHeapMb = options.threadHeapMb ?? DEFAULT_THREAD_HEAP_MB;
  const entry = threadEntry();
  const queue: Job[] = [];
  const slots: Slot[] = [];
  let nextCallId = 1;
  let closed = false;

  function spawn(index: number): Slot {
    const abortFlag = new SharedArrayBuffer(4);
    const workerData: ThreadData = { abortFlag, outputMaxBytes };
    const worker = new Worker(entry.filename, {
      eval: entry.eval,
      // Node options of this process, less those that only apply to a main script.
      execArgv: process.execArgv.filter((arg) => !arg.startsWith('--input-type')),
      workerData,
      resourceLimits: { maxOldGenerationSizeMb: threadHeapMb, stackSizeMb: 4 },
    });
    const slot: Slot = { worker, flag: new Int32Array(abortFlag), job: undefined, retired: false, lastError: undefined, ready: false };
    worker.unref(); // referenced only while a call runs
    worker.on('message', (message: FromThread) => {
      if (slot.retired) return;
      if (message.type === 'ready') {
        slot.ready = true;
        pump();
      } else onMessage(slot, message);
    });
    worker.on('error', (err: Error) => {
      slot.lastError = err;
    });
    worker.on('exit', (exitCode: number) => {
      if (slot.retired) return;
      slot.retired = true;
      const job = slot.job;
      if (job) {
        const err = slot.lastError;
        const memory =
          (err as { code?: unknown } | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY' || /memory/i.test(err?.message ?? '');
        finish(slot, job, {
          error: new AgentError(
            memory
              ? `function exceeded the memory of its thread (${threadHeapMb} MiB heap); the thread was replaced`
              : `function thread exited (code ${exitCode}${err ? `: ${err.message}` : ''}); the thread was replaced`,
            { cause: err },
          ),
        });
      } else if (!slot.ready && !closed) {
        // It could not even start: fail what waits instead of respawning in a tight loop.
        logger.error({ source: 'function-runtime', exitCode, err: slot.lastError }, 'function thread failed to start');
        const reason = `function thread failed to start: ${slot.lastError?.message ?? `exit code ${exitCode}`}`;
        if (!slots.some((s) => s !== slot && s.ready && !s.retired)) {
          for (const queued of queue.splice(0)) {
            queued.settled = true;
            queued.context.signal.removeEventListener('abort', queued.onAbort);
            queued.reject(new AgentError(reason, { cause: slot.lastError }));
          }
        }
        setTimeout(() => replace(index, slot), RESPAWN_DELAY_MS).unref();
        return;
      } else if (!closed) {
        logger.warn({ source: 'function-runtime', exitCode, err: slot.lastError }, 'idle function thread exited; replacing it');
      }
      replace(index, slot);
    });
    return slot;
  }

  function replace(index: number, old: Slot): void {
    old.retired = true;
    if (slots[index] !== old || closed) return;
    slots[index] = spawn(index);
    pump();
  }

  for (let i = 0; i < threads; i += 1) slots.push(spawn(i));

  function pump(): void {
    while (queue.length > 0 && !closed) {
      const slot = slots.find((s) => s.ready && !s.retired && s.job === undefined);
      if (!slot) return;
      const job = queue.shift();
      if (job) dispatch(slot, job);
    }
  }

  function dispatch(slot: Slot, job: Job): void {
    slot.job = job;
    slot.worker.ref();
    Atomics.store(slot.flag, 0, ABORT_NONE);
    job.deadline = Date.now() + job.limits.timeoutMs;
    const { context } = job;
    const info: IsolateInfo = {
      runId: context.runId,
      stepId: context.stepId,
      attempt: context.attempt,
      idempotencyKey: context.idempotencyKey,
      run: { id: context.run.id, definition: { slug: context.run.definition.slug, version: context.run.definition.version } },
      env: { ...context.env },
      secretNames: Object.keys(context.secrets),
    };
    const message: ToThread = {
      type: 'run',
      callId: job.callId,
      code: job.code,
      inputJson: job.inputJson,
      info,
      secrets: { ...context.secrets },
      timeoutMs: job.limits.timeoutMs,
      memoryMb: job.limits.memoryMb,
      deadline: job.deadline,
    };
    slot.worker.postMessage(message);
    job.timers.push(setTimeout(() => stop(slot, job, ABORT_TIMEOUT), job.limits.timeoutMs));
    context.signal.removeEventListener('abort', job.onAbort); // the queued-call handler
    job.onAbort = () => stop(slot, job, ABORT_CANCELLED);
    context.signal.addEventListener('abort', job.onAbort, { once: true });
  }

  /** Raise the abort flag of a running call; terminate its thread if it does not answer in time. */
  function stop(slot: Slot, job: Job, reason: number): void {
    if (job.settled || slot.job !== job || Atomics.load(slot.flag, 0) !== ABORT_NONE) return;
    Atomics.store(slot.flag, 0, reason);
    slot.worker.postMessage({ type: 'stop', callId: job.callId } satisfies ToThread);
    job.timers.push(
      setTimeout(() => {
        if (job.settled || slot.job !== job) return;
        logger.warn({ source: 'function-runtime', callId: job.callId }, 'function thread did not stop in time; terminating it');
        const index = slots.indexOf(slot);
        slot.retired = true;
        finish(slot, job, { error: stopError(job, reason) });
        void slot.worker.terminate().catch((err: unknown) => logger.error({ source: 'function-runtime', err }, 'terminate failed'));
        if (index >= 0) replace(index, slot);
      }, graceMs),
    );
  }

  function stopError(job: Job, reason: number): Error {
    return reason === ABORT_CANCELLED
      ? new CancelledError('function was cancelled')
      : new TimedOutError(`function exceeded its time limit of ${job.limits.timeoutMs} ms`);
  }

  function finish(slot: Slot, job: Job, outcome: { value: unknown } | { error: Error }): void {
    if (job.settled) return;
    job.settled = true;
    for (const timer of job.timers) clearTimeout(timer);
    job.context.signal.removeEventListener('abort', job.onAbort);
    if (slot.job === job) {
      slot.job = undefined;
      slot.worker.unref();
    }
    if ('error' in outcome) job.reject(outcome.error);
    else job.resolve(outcome.value);
    pump();
  }

  function onMessage(slot: Slot, message: Exclude<FromThread, { type: 'ready' }>): void {
    const job = slot.job;
    if (!job || job.callId !== message.callId) return;
    switch (message.type) {
      case 'done':
        finish(slot, job, outcomeOf(job, message));
        return;
      case 'log':
        job.context.logger[message.level]({ source: 'function', line: message.line }, 'function log');
        return;
      case 'host':
        void serveHost(job, message)
          .then((reply) => {
            if (slot.job === job && !slot.retired) {
              slot.worker.postMessage(reply, reply.bytes ? [reply.bytes.buffer as ArrayBuffer] : []);
            }
          })
          .catch((err: unknown) => logger.error({ source: 'function-runtime', err }, 'host call reply failed'));
        return;
      default:
        return;
    }
  }

  function outcomeOf(job: Job, message: DoneMessage): { value: unknown } | { error: Error } {
    if (message.ok) return { value: JSON.parse(message.json) as unknown };
    if (job.infrastructureError && message.kind !== 'timeout' && message.kind !== 'cancelled') return { error: job.infrastructureError };
    switch (message.kind) {
      case 'timeout':
        return { error: new TimedOutError(message.message) };
      case 'cancelled':
        return { error: new CancelledError(message.message) };
      case 'output':
        return { error: new OutputTooLargeError(message.message) };
      case 'missing-secret':
        return { error: new MissingSecretError(message.message) };
      case 'validation':
        return { error: new ValidationError(message.message) };
      case 'retry':
        // The code marked its error `retryable` (e.g. an upstream 429/5xx): the step's retry policy applies.
        return { error: new RetryLaterError(message.message, message.retryAfterMs === undefined ? {} : { retryAfterMs: message.retryAfterMs }) };
      case 'memory':
      case 'agent':
        return { error: new AgentError(message.message, { details: { callId: job.callId } }) };
      default:
        return { error: new AgentError(message.message) };
    }
  }

  return {
    run(code: string, input: unknown, limits: FunctionLimits, context: AgentContext): Promise<unknown> {
      if (closed) return Promise.reject(new CancelledError('the function runtime is closed'));
      let checked: FunctionLimits;
      try {
        checked = checkLimits(limits, maxTimeoutMs, maxMemoryMb);
      } catch (err) {
        return Promise.reject(err);
      }
      if (context.signal.aborted) return Promise.reject(new CancelledError('function was cancelled'));
      let inputJson: string | undefined;
      try {
        inputJson = JSON.stringify(input === undefined ? null : input);
      } catch (err) {
        return Promise.reject(new ValidationError(`input is not JSON-serialisable: ${messageOf(err)}`, { field: 'input', cause: err }));
      }
      if (inputJson === undefined) return Promise.reject(new ValidationError('input is not JSON-serialisable', { field: 'input' }));
      const json = inputJson;
      return new Promise<unknown>((resolve, reject) => {
        const job: Job = {
          callId: nextCallId++,
          code,
          inputJson: json,
          limits: checked,
          context,
          resolve,
          reject,
          deadline: 0,
          timers: [],
          settled: false,
          onAbort: () => {
            // While queued: leave the queue.
            const at = queue.indexOf(job);
            if (at >= 0) queue.splice(at, 1);
            job.settled = true;
            reject(new CancelledError('function was cancelled'));
          },
        };
        context.signal.addEventListener('abort', job.onAbort, { once: true });
        queue.push(job);
        pump();
      });
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const job of queue.splice(0)) {
        job.settled = true;
        job.context.signal.removeEventListener('abort', job.onAbort);
        job.reject(new CancelledError('the function runtime is closed'));
      }
      const exits = slots.map(async (slot) => {
        const job = slot.job;
        slot.retired = true;
        if (job) finish(slot, job, { error: new CancelledError('the function runtime is closed') });
        await slot.worker.terminate();
      });
      await Promise.all(exits);
    },
  };
}

/**
 * Validate limits against the runtime's bounds.
 * @throws {ValidationError} (field `limits.timeout` / `limits.memoryMb`) when a limit is not a
 *   positive number or is above its bound.
 */
function checkLimits(limits: FunctionLimits, maxTimeoutMs: number, maxMemoryMb: number): FunctionLimits {
  const { timeoutMs, memoryMb } = limits;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new ValidationError(`limits.timeout must be a positive duration (got ${String(timeoutMs)} ms)`, { field: 'limits.timeout' });
  }
  if (timeoutMs > maxTimeoutMs) {
    throw new ValidationError(`limits.timeout of ${timeoutMs} ms is above the maximum of ${maxTimeoutMs} ms`, { field: 'limits.timeout' });
  }
  if (!(Number.isInteger(memoryMb) && memoryMb > 0)) {
    throw new ValidationError(`limits.memoryMb must be a positive integer (got ${String(memoryMb)})`, { field: 'limits.memoryMb' });
  }
  if (memoryMb > maxMemoryMb) {
    throw new ValidationError(`limits.memoryMb of ${memoryMb} is above the maximum of ${maxMemoryMb}`, { field: 'limits.memoryMb' });
  }
  return { timeoutMs, memoryMb };
}

/** Serve one host call of a running job; never rejects (errors become error replies). */
async function serveHost(job: Job, message: HostMessage): Promise<ReplyMessage> {
  const reply = (json: string, bytes?: Uint8Array): ReplyMessage => ({
    type: 'reply',
    callId: job.callId,
    id: message.id,
    ok: true,
    json,
    ...(bytes ? { bytes } : {}),
  });
  try {
    const payload = JSON.parse(message.payload) as unknown;
    const { context } = job;
    switch (message.op) {
      case 'http': {
        const request = httpRequest(payload, message.bytes, job);
        const response = await context.http(request);
        const head = { status: response.status, statusText: STATUS_CODES[response.status] ?? '', headers: response.headers };
        if (response.data instanceof Uint8Array) {
          return reply(JSON.stringify(head), new Uint8Array(response.data)); // a copy we may transfer
        }
        return reply(JSON.stringify({ ...head, data: response.data }));
      }
      case 'saveBuffer': {
        const meta = record(payload, 'ctx.assets.saveBuffer');
        if (!message.bytes) throw new ValidationError('ctx.assets.saveBuffer: bytes expected');
        const ref = await context.assets.saveBuffer(message.bytes, {
          name: text(meta.name, 'ctx.assets.saveBuffer: name'),
          mimeType: text(meta.mimeType, 'ctx.assets.saveBuffer: mimeType'),
        });
        return reply(JSON.stringify(ref));
      }
      case 'deliverable': {
        const d = record(payload, 'ctx.deliverables.create');
        const assetIds = d.assetIds;
        if (assetIds !== undefined && !(Array.isArray(assetIds) && assetIds.every((id) => typeof id === 'string'))) {
          throw new ValidationError('ctx.deliverables.create: assetIds must be an array of strings');
        }
        const created = await context.deliverables.create({
          title: text(d.title, 'ctx.deliverables.create: title'),
          kind: text(d.kind, 'ctx.deliverables.create: kind'),
          content: d.content,
          ...(assetIds ? { assetIds: assetIds } : {}),
        });
        return reply(JSON.stringify({ id: created.id }));
      }
      case 'progress': {
        const p = record(payload, 'ctx.progress');
        const fraction = p.fraction;
        if (typeof fraction !== 'number' || !(fraction >= 0 && fraction <= 1)) {
          throw new ValidationError('ctx.progress: fraction must be a number between 0 and 1');
        }
        await context.progress(fraction, typeof p.message === 'string' ? p.message : undefined);
        return reply('null');
      }
      default:
        throw new ValidationError(`unknown host operation ${String(message.op)}`);
    }
  } catch (err) {
    // An upstream's failure (`http`) is the work's; our own store's is not (see `Job.infrastructureError`).
    if (message.op !== 'http' && err instanceof Error && isInfrastructureError(err)) job.infrastructureError ??= err;
    return { type: 'reply', callId: job.callId, id: message.id, ok: false, json: JSON.stringify(errorShape(err)) };
  }
}

/**
 * The outbound request for an isolate's axios call, bounded by the call's remaining time.
 * @throws {ValidationError} for a malformed request; {@link TimedOutError} when no time is left.
 */
function httpRequest(payload: unknown, bytes: Uint8Array | undefined, job: Job): OutboundRequest {
  const p = record(payload, 'axios');
  const method = text(p.method, 'axios: method').toUpperCase() as OutboundMethod;
  if (!OUTBOUND_METHODS.includes(method)) throw new ValidationError(`axios: method ${method} is not supported`);
  const url = text(p.url, 'axios: url');
  const headers: Record<string, string> = {};
  if (p.headers !== undefined) {
    for (const [name, value] of Object.entries(record(p.headers, 'axios: headers'))) headers[name] = String(value);
  }
  const responseType = (p.responseType ?? 'json') as OutboundResponseType;
  if (!RESPONSE_TYPES.includes(responseType)) throw new ValidationError('axios: responseType must be json, text or arraybuffer');
  const remainingMs = job.deadline - Date.now();
  if (remainingMs <= 0) throw new TimedOutError(`function exceeded its time limit of ${job.limits.timeoutMs} ms`);
  const requested = typeof p.timeoutMs === 'number' && p.timeoutMs > 0 ? p.timeoutMs : remainingMs;
  const body = bytes ?? (typeof p.body === 'string' ? p.body : undefined);
  return {
    method,
    url,
    headers,
    ...(body === undefined ? {} : { body }),
    timeoutMs: Math.min(requested, remainingMs),
    signal: job.context.signal,
    responseType,
    ...(typeof p.maxRedirects === 'number' ? { maxRedirects: p.maxRedirects } : {}),
  };
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ValidationError(`${what}: an object expected`);
  return value as Record<string, unknown>;
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw new ValidationError(`${what} must be a non-empty string`);
  return value;
}

/** The `{name, message, code}` the isolate sees for a host error. */
function errorShape(err: unknown): HostErrorShape {
  if (err instanceof AppError) return { name: err.name, message: err.message, code: err.code };
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: String(err) };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
