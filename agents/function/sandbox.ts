/**
 * Run user JavaScript in a real isolate: QuickJS compiled to WebAssembly (`quickjs-emscripten`).
 *
 * The code is a plain script that defines `function main(input) { ... }` (it may be `async`).
 * The input goes in as JSON, the result comes out as JSON: nothing but JSON text ever crosses
 * the boundary. The isolate has no `require`, no `process`, no timers, no network and no file
 * system; the only host function is `console.log`, forwarded to a logger when one is given.
 *
 * One WebAssembly module is loaded per process (lazily); every call gets a fresh runtime and
 * context with its own memory limit, stack limit and interrupt handler, and disposes them.
 *
 * Note: the sync QuickJS build runs on the calling thread, so the event loop is blocked while
 * user code runs (at most `timeoutMs`). An abort that happens during that time (from another
 * thread of control, e.g. a timer) is therefore seen when the code yields back — at the latest
 * when the deadline interrupts it; an abort that happened before, or synchronously during the
 * run (e.g. from the `console.log` forwarder), stops the code at once.
 */
import {
  getQuickJS,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSWASMModule,
} from 'quickjs-emscripten';
import { AgentError, CancelledError, ValidationError, type Logger } from '../../lib/index.js';
import type { AgentContext, NamedAgent } from '../types.js';

/** Resource limits of one sandboxed call. */
export interface SandboxLimits {
  /** Wall-clock budget for evaluating the script and running `main`, in milliseconds. */
  timeoutMs: number;
  /** Heap limit of the QuickJS runtime, in bytes. */
  memoryBytes: number;
  /** Aborting it stops the code (→ {@link CancelledError}). */
  signal?: AbortSignal;
  /** Receives the code's `console.log` lines (level `info`, capped); without it they are dropped. */
  logger?: Logger;
}

/** QuickJS stack limit, in bytes (deep recursion → `RangeError: Maximum call stack size exceeded`). */
const MAX_STACK_BYTES = 512 * 1024;
/** At most this many `console.log` lines are forwarded per call. */
const MAX_LOG_LINES = 100;
/** Each forwarded `console.log` line is cut to this many characters. */
const MAX_LOG_LINE_CHARS = 2000;

let quickJs: Promise<QuickJSWASMModule> | undefined;

/** The process's single QuickJS WebAssembly module (loaded on first use). */
function quickJsModule(): Promise<QuickJSWASMModule> {
  quickJs ??= getQuickJS().catch((err: unknown) => {
    quickJs = undefined; // let a later call try again
    throw err;
  });
  return quickJs;
}

/**
 * Helpers evaluated before the user's script, capturing `JSON` so that a script that replaces
 * the global cannot change how input and output are (de)serialised.
 */
const PRELUDE = `(() => {
  const parse = JSON.parse, stringify = JSON.stringify;
  return {
    call(main, inputJson) { return main(parse(inputJson)); },
    out(value) {
      const t = typeof value;
      if (value === undefined || t === 'function' || t === 'symbol') return undefined;
      return stringify(value);
    },
    isPromise(value) { return value instanceof Promise; },
  };
})()`;

type StopReason = 'timeout' | 'aborted' | undefined;

interface QuickJsErrorShape {
  name?: unknown;
  message?: unknown;
  stack?: unknown;
}

/**
 * Run `code`'s `main(input)` in a fresh QuickJS runtime.
 *
 * @param code - a plain script defining `function main(input)` (may be `async`).
 * @param input - JSON-serialisable value passed to `main` (`undefined` becomes `null`).
 * @param limits - {@link SandboxLimits}: `timeoutMs`, `memoryBytes`, optional `signal`, `logger`.
 * @returns `main`'s result after a JSON round trip (a fresh plain value).
 * @throws {CancelledError} when `limits.signal` is or becomes aborted.
 * @throws {ValidationError} (field `input`) when `input` cannot be serialised to JSON.
 * @throws {AgentError} when the script does not compile, `main` is missing, `main` throws
 *   (message and first stack line), the time limit (`function exceeded its time limit of N ms`)
 *   or the memory limit is exceeded, or the result is not JSON-serialisable.
 */
export async function runInSandbox(code: string, input: unknown, limits: SandboxLimits): Promise<unknown> {
  const { timeoutMs, memoryBytes, signal, logger } = limits;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new RangeError('timeoutMs must be a positive number');
  if (!(Number.isInteger(memoryBytes) && memoryBytes > 0)) throw new RangeError('memoryBytes must be a positive integer');
  throwIfAborted(signal);

  let inputJson: string | undefined;
  try {
    inputJson = JSON.stringify(input === undefined ? null : input);
  } catch (err) {
    throw new ValidationError(`input is not JSON-serialisable: ${errorMessage(err)}`, { field: 'input', cause: err });
  }
  if (inputJson === undefined) throw new ValidationError('input is not JSON-serialisable', { field: 'input' });

  const module = await quickJsModule();
  throwIfAborted(signal);

  const runtime = module.newRuntime();
  let context: QuickJSContext | undefined;
  let stopReason: StopReason;
  const deadline = Date.now() + timeoutMs;
  try {
    runtime.setMemoryLimit(memoryBytes);
    runtime.setMaxStackSize(MAX_STACK_BYTES);
    runtime.setInterruptHandler(() => {
      if (signal?.aborted) stopReason = 'aborted';
      else if (Date.now() > deadline) stopReason = 'timeout';
      return stopReason !== undefined;
    });
    context = runtime.newContext();
    installConsole(context, logger);
    const outputJson = execute(context, runtime, code, inputJson, () => stopReason);
    return JSON.parse(outputJson) as unknown;
  } catch (err) {
    throw toSandboxError(err, stopReason, limits);
  } finally {
    context?.dispose();
    runtime.dispose();
  }
}

/** Evaluate the prelude and the script, call `main`, settle a returned promise, stringify. */
function execute(
  context: QuickJSContext,
  runtime: QuickJSRuntime,
  code: string,
  inputJson: string,
  stopped: () => StopReason,
): string {
  const handles: QuickJSHandle[] = [];
  const keep = (handle: QuickJSHandle): QuickJSHandle => {
    handles.push(handle);
    return handle;
  };
  try {
    const helpers = keep(unwrap(context, context.evalCode(PRELUDE, 'baton-prelude.js')));
    keep(unwrap(context, context.evalCode(code, 'function.js')));

    const main = keep(context.getProp(context.global, 'main'));
    if (context.typeof(main) !== 'function') {
      throw new AgentError('the function code must define `function main(input) { ... }`');
    }
    const call = keep(context.getProp(helpers, 'call'));
    const inputHandle = keep(context.newString(inputJson));
    let result = keep(unwrap(context, context.callFunction(call, context.undefined, main, inputHandle)));

    const isPromise = keep(context.getProp(helpers, 'isPromise'));
    const promiseCheck = keep(unwrap(context, context.callFunction(isPromise, context.undefined, result)));
    if (context.dump(promiseCheck) === true) {
      result = keep(settlePromise(context, runtime, result, stopped));
    }

    const out = keep(context.getProp(helpers, 'out'));
    const json = keep(unwrap(context, context.callFunction(out, context.undefined, result)));
    if (context.typeof(json) !== 'string') {
      throw new AgentError('main must return a JSON-serialisable value (got undefined, a function or a symbol)');
    }
    return context.getString(json);
  } finally {
    for (const handle of handles.reverse()) if (handle.alive) handle.dispose();
  }
}

/** Drive QuickJS's job queue until `promise` settles; returns a new handle to its value. */
function settlePromise(
  context: QuickJSContext,
  runtime: QuickJSRuntime,
  promise: QuickJSHandle,
  stopped: () => StopReason,
): QuickJSHandle {
  for (;;) {
    const state = context.getPromiseState(promise);
    if (state.type === 'fulfilled') {
      // For a promise, `value` is a new handle owned by the caller.
      return state.value;
    }
    if (state.type === 'rejected') {
      throw new SandboxThrow(dumpError(context, state.error));
    }
    if (!runtime.hasPendingJob()) {
      throw new AgentError('main returned a promise that never settles (no timers or I/O exist in the sandbox)');
    }
    const jobs = runtime.executePendingJobs();
    if (jobs.error) {
      const dumped = dumpError(context, jobs.error);
      throw new SandboxThrow(dumped);
    }
    if (stopped()) throw new SandboxThrow({ message: 'interrupted' });
  }
}

/** A JS exception raised inside the isolate, already converted to host values. */
class SandboxThrow extends Error {
  constructor(readonly thrown: QuickJsErrorShape | string) {
    super(typeof thrown === 'string' ? thrown : String(thrown.message ?? 'unknown error'));
  }
}

/** Unwrap a call result; on failure dispose the error handle and throw {@link SandboxThrow}. */
function unwrap(
  context: QuickJSContext,
  result: ReturnType<QuickJSContext['evalCode']>,
): QuickJSHandle {
  if (result.error) throw new SandboxThrow(dumpError(context, result.error));
  return result.value;
}

/** Convert (and dispose) an exception handle. */
function dumpError(context: QuickJSContext, handle: QuickJSHandle): QuickJsErrorShape | string {
  try {
    const dumped: unknown = context.dump(handle);
    if (dumped !== null && typeof dumped === 'object') return dumped as QuickJsErrorShape;
    return String(dumped);
  } finally {
    handle.dispose();
  }
}

/** Define `console.log` (and `info`/`warn`/`error` aliases) forwarding to `logger`. */
function installConsole(context: QuickJSContext, logger: Logger | undefined): void {
  let lines = 0;
  const consoleHandle = context.newObject();
  try {
    for (const level of ['log', 'info', 'warn', 'error'] as const) {
      const fn = context.newFunction(level, (...args) => {
        if (!logger || lines >= MAX_LOG_LINES) return;
        lines += 1;
        const text = args
          .map((arg) => {
            const value: unknown = context.dump(arg);
            return typeof value === 'string' ? value : safeJson(value);
          })
          .join(' ');
        const line = text.length > MAX_LOG_LINE_CHARS ? `${text.slice(0, MAX_LOG_LINE_CHARS)}…` : text;
        const method = level === 'log' ? 'info' : level;
        logger[method]({ source: 'sandbox', line }, 'function console output');
        if (lines === MAX_LOG_LINES) logger.warn({ source: 'sandbox' }, 'further console output dropped');
      });
      context.setProp(consoleHandle, level, fn);
      fn.dispose();
    }
    context.setProp(context.global, 'console', consoleHandle);
  } finally {
    consoleHandle.dispose();
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Map whatever was thrown during a run to the module's error contract. */
function toSandboxError(err: unknown, stopReason: StopReason, limits: SandboxLimits): Error {
  if (stopReason === 'aborted' || limits.signal?.aborted) {
    return new CancelledError('function was cancelled', { cause: err });
  }
  if (stopReason === 'timeout') {
    return new AgentError(`function exceeded its time limit of ${limits.timeoutMs} ms`, { cause: err });
  }
  if (err instanceof AgentError || err instanceof CancelledError || err instanceof ValidationError) return err;
  if (err instanceof SandboxThrow) {
    const { thrown } = err;
    const name = typeof thrown === 'string' ? undefined : stringOr(thrown.name);
    const message = typeof thrown === 'string' ? thrown : (stringOr(thrown.message) ?? safeJson(thrown));
    if (isOutOfMemory(name, message)) {
      return new AgentError(`function exceeded its memory limit of ${limits.memoryBytes} bytes`, { cause: err });
    }
    const stack = typeof thrown === 'string' ? undefined : stringOr(thrown.stack);
    const where = stack
      ?.split('\n')
      .map((line) => line.trim())
      .find((line) => line.startsWith('at '));
    const label = name && name !== 'Error' ? `${name}: ${message}` : message;
    return new AgentError(`function threw: ${label}${where ? ` (${where})` : ''}`, { cause: err });
  }
  if (err instanceof Error && isOutOfMemory(undefined, err.message)) {
    return new AgentError(`function exceeded its memory limit of ${limits.memoryBytes} bytes`, { cause: err });
  }
  return new AgentError(`function failed: ${errorMessage(err)}`, { cause: err });
}

function isOutOfMemory(name: string | undefined, message: string): boolean {
  return /out of memory/i.test(message) || (name === 'InternalError' && /memory/i.test(message));
}

function stringOr(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError('function was cancelled');
}

/** Limits of a {@link functionAgent}; the step's signal and logger come from its context. */
export interface FunctionAgentLimits {
  /** Wall-clock budget per call, in milliseconds. */
  timeoutMs: number;
  /** QuickJS heap limit per call, in bytes. */
  memoryBytes: number;
}

/** Options of {@link functionAgent}. */
export interface FunctionAgentOptions {
  /**
   * Validates (and may transform) the step input before it enters the sandbox.
   * Must throw {@link ValidationError} for invalid input. Default: pass through.
   */
  parseInput?: (input: unknown) => unknown;
}

/**
 * A named agent of type `function` that runs fixed JavaScript in the sandbox.
 *
 * @param name - agent name, e.g. `kpi-calculator`.
 * @param description - one line for listings.
 * @param code - the script source, or a loader called once on first use (its promise is cached;
 *   a failed load is retried on the next call).
 * @param limits - per-call {@link FunctionAgentLimits}.
 * @param options - {@link FunctionAgentOptions}.
 * @returns a {@link NamedAgent} whose `run` throws like {@link runInSandbox}.
 */
export function functionAgent(
  name: string,
  description: string,
  code: string | (() => Promise<string>),
  limits: FunctionAgentLimits,
  options: FunctionAgentOptions = {},
): NamedAgent {
  let source: Promise<string> | undefined;
  const loadSource = (): Promise<string> => {
    if (typeof code === 'string') return Promise.resolve(code);
    source ??= code().catch((err: unknown) => {
      source = undefined;
      throw err;
    });
    return source;
  };
  return {
    name,
    type: 'function',
    description,
    async run(input: unknown, ctx: AgentContext): Promise<unknown> {
      const parsed = options.parseInput ? options.parseInput(input) : input;
      const script = await loadSource();
      return runInSandbox(script, parsed, {
        timeoutMs: limits.timeoutMs,
        memoryBytes: limits.memoryBytes,
        signal: ctx.signal,
        logger: ctx.logger.child({ agent: name }),
      });
    },
  };
}
