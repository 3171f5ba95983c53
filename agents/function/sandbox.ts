/**
 * Run user JavaScript in a real isolate: QuickJS compiled to WebAssembly (`quickjs-emscripten`).
 *
 * The code is a plain script that defines `function main(input) { ... }` (it may be `async`).
 * The input goes in as JSON, the result comes out as JSON: nothing but JSON text ever crosses
 * the boundary. The isolate has no `require`, no `process`, no timers, no network and no file
 * system; the only host function is `console.log`, forwarded to a logger when one is given.
 *
 * Every call gets a fresh QuickJS runtime and context (memory limit, stack limit, interrupt
 * handler) and disposes them before it returns. The runtime is created, used and disposed in one
 * synchronous stretch (no `await` in between), so a WebAssembly module never holds more than one
 * live runtime.
 *
 * Memory: `runtime.setMemoryLimit()` alone is not a real limit in the emscripten build — QuickJS
 * cannot ask emscripten's allocator for block sizes, so it only accounts 8 bytes per allocation
 * and rejects single allocations above the limit (measured: 200 × 800 KB typed arrays succeed
 * under a 16 MB limit). The hard limit is therefore the WebAssembly memory itself: modules are
 * created with a `WebAssembly.Memory` whose `maximum` is the module's fixed 16 MiB base (5 MiB C
 * stack, static data, and a few MiB of free heap) plus `memoryBytes`. There is one lazily loaded
 * module per distinct memory limit (at most {@link MAX_CACHED_MODULES}, least recently used
 * first out), not one per call.
 *
 * Stack: WebAssembly frames live on the host (V8) stack, and some QuickJS C paths (the parser,
 * `JSON.stringify` of deeply nested values) use far more host stack than QuickJS's own stack
 * accounting sees. If the host stack overflows inside the module, the C code is unwound half-way
 * and the module's state can no longer be trusted: that runtime is abandoned (not disposed) and
 * the module is replaced by a fresh one on the next call.
 *
 * Cancellation: the sync QuickJS build runs on the calling thread, so the event loop is blocked
 * while user code runs (at most `timeoutMs`). An abort that happened before the call, or that
 * happens synchronously during it (e.g. from the `console.log` forwarder), stops the code at the
 * next interrupt check; an abort scheduled on the event loop (a timer, a message) can only run
 * once the code has finished or hit its deadline.
 */
import type { QuickJSContext, QuickJSHandle, QuickJSRuntime } from 'quickjs-emscripten';
import { AgentError, CancelledError, ValidationError, type Logger } from '../../lib/index.js';
import {
  MAX_MEMORY_BYTES,
  MAX_STACK_BYTES,
  QuickJsModuleCache,
  RESULT_HELPERS_JS,
  SandboxThrow,
  describeThrow,
  dumpError,
  isOutOfMemory,
  safeJson,
  unwrap,
} from './quickjs-support.js';

/** Resource limits of one sandboxed call. */
export interface SandboxLimits {
  /** Wall-clock budget for evaluating the script and running `main`, in milliseconds. */
  timeoutMs: number;
  /**
   * Heap budget, in bytes. Enforced by QuickJS per allocation and by the WebAssembly memory
   * maximum overall (see the module notes: up to ~10 MiB of the module's base heap comes on top).
   */
  memoryBytes: number;
  /** Aborting it stops the code (→ {@link CancelledError}). */
  signal?: AbortSignal;
  /** Receives the code's `console.log` lines (level `info`, capped); without it they are dropped. */
  logger?: Logger;
}

/** At most this many `console.log` lines are forwarded per call. */
const MAX_LOG_LINES = 100;
/** Each forwarded `console.log` line is cut to this many characters. */
const MAX_LOG_LINE_CHARS = 2000;
/** Modules kept for distinct memory limits; each may retain up to its maximum memory. */
const MAX_CACHED_MODULES = 4;

const modules = new QuickJsModuleCache(MAX_CACHED_MODULES);

/**
 * Helpers evaluated before the user's script, capturing `JSON` and `Promise` so that a script
 * that replaces those globals cannot change how input and output are (de)serialised.
 */
const PRELUDE = `(() => {
  const parse = JSON.parse, stringify = JSON.stringify, NativePromise = Promise;
  return {
    call(main, inputJson) { return main(parse(inputJson)); },
    ${RESULT_HELPERS_JS}
  };
})()`;

type StopReason = 'timeout' | 'aborted' | undefined;

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
 *   or the memory limit is exceeded, the nesting is too deep for the stack, or the result is not
 *   JSON-serialisable.
 * @throws {RangeError} when `timeoutMs` is not positive or `memoryBytes` is not an integer in
 *   1..2 GiB (a caller bug, not a user error).
 */
export async function runInSandbox(code: string, input: unknown, limits: SandboxLimits): Promise<unknown> {
  const { timeoutMs, memoryBytes, signal, logger } = limits;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new RangeError('timeoutMs must be a positive number');
  if (!(Number.isInteger(memoryBytes) && memoryBytes > 0 && memoryBytes <= MAX_MEMORY_BYTES)) {
    throw new RangeError(`memoryBytes must be an integer between 1 and ${MAX_MEMORY_BYTES}`);
  }
  throwIfAborted(signal);

  let inputJson: string | undefined;
  try {
    inputJson = JSON.stringify(input === undefined ? null : input);
  } catch (err) {
    throw new ValidationError(`input is not JSON-serialisable: ${errorMessage(err)}`, { field: 'input', cause: err });
  }
  if (inputJson === undefined) throw new ValidationError('input is not JSON-serialisable', { field: 'input' });

  const entry = modules.moduleFor(memoryBytes);
  const module = await entry.module;
  throwIfAborted(signal);

  // From here to the end: synchronous (see the module notes).
  const runtime = module.newRuntime();
  const growFailuresBefore = entry.growFailures;
  let context: QuickJSContext | undefined;
  let stopReason: StopReason;
  let hostFailure = false;
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
    hostFailure = !isExpected(err);
    const memoryExhausted = entry.growFailures > growFailuresBefore;
    throw toSandboxError(err, { stopReason, memoryExhausted, limits });
  } finally {
    if (hostFailure) {
      // The WebAssembly code was interrupted by a host exception: do not touch it again.
      modules.discard(entry);
      logger?.warn({ source: 'sandbox' }, 'QuickJS module discarded after a host-level failure');
    } else {
      try {
        context?.dispose();
        runtime.dispose();
      } catch (err) {
        modules.discard(entry);
        logger?.error({ source: 'sandbox', err }, 'QuickJS runtime could not be disposed; module discarded');
      }
    }
  }
}

/** Errors raised on purpose by this module (the WebAssembly state is still consistent). */
function isExpected(err: unknown): boolean {
  return err instanceof SandboxThrow || err instanceof AgentError || err instanceof CancelledError;
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

/** Map whatever was thrown during a run to the module's error contract. */
function toSandboxError(
  err: unknown,
  state: { stopReason: StopReason; memoryExhausted: boolean; limits: SandboxLimits },
): Error {
  const { stopReason, memoryExhausted, limits } = state;
  const memoryError = (): AgentError =>
    new AgentError(`function exceeded its memory limit of ${limits.memoryBytes} bytes`, { cause: err });
  if (stopReason === 'aborted' || limits.signal?.aborted) {
    return new CancelledError('function was cancelled', { cause: err });
  }
  if (stopReason === 'timeout') {
    return new AgentError(`function exceeded its time limit of ${limits.timeoutMs} ms`, { cause: err });
  }
  if (err instanceof AgentError || err instanceof CancelledError || err instanceof ValidationError) return err;
  if (err instanceof SandboxThrow) {
    const described = describeThrow(err.thrown, memoryExhausted);
    if (described.outOfMemory) return memoryError();
    if (described.stackOverflow) {
      return new AgentError('function exceeded the sandbox stack (nesting too deep)', { cause: err });
    }
    return new AgentError(`function threw: ${described.label}`, { cause: err });
  }
  if (err instanceof RangeError && /call stack/i.test(err.message)) {
    return new AgentError('function exceeded the sandbox stack (nesting too deep)', { cause: err });
  }
  if (memoryExhausted || (err instanceof Error && isOutOfMemory(undefined, err.message))) return memoryError();
  return new AgentError(`function failed in the sandbox: ${errorMessage(err)}`, { cause: err });
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError('function was cancelled');
}
