/**
 * QuickJS pieces shared by the in-process sandbox (`sandbox.ts`) and the thread-pool runtime
 * (`runtime-thread.ts`): modules with a hard WebAssembly memory maximum, and the conversion of
 * isolate exceptions to host values. No lib/ imports: this file also loads inside worker threads.
 *
 * Memory: `runtime.setMemoryLimit()` alone is not a real limit in the emscripten build — QuickJS
 * cannot ask emscripten's allocator for block sizes, so it only accounts 8 bytes per allocation
 * and rejects single allocations above the limit. The hard limit is the WebAssembly memory
 * itself: a module is created with a `WebAssembly.Memory` whose `maximum` is the module's fixed
 * 16 MiB base (5 MiB C stack, static data, a few MiB of free heap) plus the limit in bytes.
 */
import {
  newQuickJSWASMModule,
  newVariant,
  RELEASE_SYNC,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSWASMModule,
} from 'quickjs-emscripten';

/**
 * QuickJS stack limit, in bytes: about 1 300 nested JS calls (deeper → `InternalError: stack
 * overflow`). Measured: with 512 KiB, plain JS recursion already overflows Node's default
 * ~1 MB host stack before QuickJS notices.
 */
export const MAX_STACK_BYTES = 256 * 1024;
/** WebAssembly page size, in bytes. */
const WASM_PAGE_BYTES = 64 * 1024;
/** Initial memory the QuickJS build declares (emscripten's INITIAL_MEMORY: 16 MiB = 256 pages). */
const BASE_PAGES = 256;
/** Upper bound of memory limits accepted, in bytes (wasm32 addresses at most 4 GiB). */
export const MAX_MEMORY_BYTES = 2 * 1024 * 1024 * 1024;

/** The slice of `WebAssembly.Memory` used here (the project's `lib` setting has no WebAssembly types). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(deltaPages: number): number;
}
const WasmMemoryClass = (
  globalThis as unknown as {
    WebAssembly: { Memory: new (descriptor: { initial: number; maximum: number }) => WasmMemory };
  }
).WebAssembly.Memory;

/** A loaded (or loading) QuickJS module with its own bounded WebAssembly memory. */
export interface CachedModule {
  module: Promise<QuickJSWASMModule>;
  /** How often emscripten's allocator failed to grow the memory (it hit `maximum`). */
  growFailures: number;
}

/**
 * Modules by memory limit, least recently used first out. One module holds one live runtime at
 * a time: callers create, use and dispose a runtime before the next call on the same module.
 */
export class QuickJsModuleCache {
  /** Loaded modules by maximum page count, in least-recently-used order (Map insertion order). */
  private readonly modules = new Map<number, CachedModule>();

  /** @param maxModules - modules kept; each may retain up to its maximum memory. */
  constructor(private readonly maxModules: number) {}

  /**
   * The module for `memoryBytes` (loaded on first use, then reused).
   * @param memoryBytes - heap budget in bytes; the module's memory maximum is 16 MiB more.
   */
  moduleFor(memoryBytes: number): CachedModule {
    const maxPages = BASE_PAGES + Math.ceil(memoryBytes / WASM_PAGE_BYTES);
    const cached = this.modules.get(maxPages);
    if (cached) {
      this.modules.delete(maxPages);
      this.modules.set(maxPages, cached); // most recently used last
      return cached;
    }
    const memory = new WasmMemoryClass({ initial: BASE_PAGES, maximum: maxPages });
    const entry: CachedModule = {
      growFailures: 0,
      module: newQuickJSWASMModule(newVariant(RELEASE_SYNC, { wasmMemory: memory })),
    };
    // emscripten grows the heap with `memory.grow(pages)` and turns a RangeError into a failed
    // malloc; count those failures so that an error raised meanwhile is reported as memory.
    const grow = memory.grow.bind(memory);
    memory.grow = (deltaPages: number): number => {
      try {
        return grow(deltaPages);
      } catch (err) {
        entry.growFailures += 1;
        throw err;
      }
    };
    entry.module.catch(() => {
      if (this.modules.get(maxPages) === entry) this.modules.delete(maxPages); // a later call tries again
    });
    this.modules.set(maxPages, entry);
    while (this.modules.size > this.maxModules) {
      const oldest = this.modules.keys().next().value;
      if (oldest === undefined) break;
      this.modules.delete(oldest);
    }
    return entry;
  }

  /** Forget a module whose internal state may be corrupt; the next call loads a fresh one. */
  discard(entry: CachedModule): void {
    for (const [pages, cached] of this.modules) if (cached === entry) this.modules.delete(pages);
  }
}

/**
 * Isolate source of two prelude helper methods (`out`: a value as JSON text or `undefined`;
 * `isPromise`), for an object literal in a prelude that has captured `stringify` and
 * `NativePromise` before user code could replace `JSON` or `Promise`.
 */
export const RESULT_HELPERS_JS = `out(value) {
    const t = typeof value;
    if (value === undefined || t === 'function' || t === 'symbol') return undefined;
    return stringify(value);
  },
  isPromise(value) { return value instanceof NativePromise; },`;

/** The shape of an exception dumped out of the isolate. */
export interface QuickJsErrorShape {
  name?: unknown;
  message?: unknown;
  stack?: unknown;
  /** Set by user code on a transient failure (e.g. an upstream 429/5xx): worth another attempt. */
  retryable?: unknown;
  /** With `retryable`: the wait the upstream asked for, in milliseconds. */
  retryAfterMs?: unknown;
}

/** The `message` of a thrown value as text (`throw { message: 42 }` → `42`). */
function messageOf(message: unknown): string {
  if (typeof message === 'string') return message;
  if (message === undefined || message === null) return 'unknown error';
  return JSON.stringify(message) ?? typeof message;
}

/** A JS exception raised inside the isolate, already converted to host values. */
export class SandboxThrow extends Error {
  constructor(readonly thrown: QuickJsErrorShape | string) {
    super(typeof thrown === 'string' ? thrown : messageOf(thrown.message));
  }
}

/**
 * Unwrap a call result; on failure dispose the error handle.
 * @throws {SandboxThrow} with the dumped exception when the result is an error.
 */
export function unwrap(context: QuickJSContext, result: ReturnType<QuickJSContext['evalCode']>): QuickJSHandle {
  if (result.error) throw new SandboxThrow(dumpError(context, result.error));
  return result.value;
}

/** Convert (and dispose) an exception handle. */
export function dumpError(context: QuickJSContext, handle: QuickJSHandle): QuickJsErrorShape | string {
  try {
    const dumped: unknown = context.dump(handle);
    if (dumped !== null && typeof dumped === 'object') return dumped;
    return String(dumped);
  } finally {
    handle.dispose();
  }
}

/** What an isolate exception says, for error messages. */
export interface ThrowDescription {
  name: string | undefined;
  message: string;
  /** `name: message` (just `message` for a plain `Error`) and the first `at …` stack line. */
  label: string;
  /** QuickJS ran out of memory (or could not even build the error because of it). */
  outOfMemory: boolean;
  /** QuickJS's own stack limit was hit. */
  stackOverflow: boolean;
  /** The code marked the error `retryable: true` (a transient failure). */
  retryable: boolean;
  /** With `retryable`, a non-negative `retryAfterMs` the code gave. */
  retryAfterMs: number | undefined;
}

/**
 * Describe an exception thrown in the isolate.
 * @param memoryExhausted - the module's memory failed to grow during the call.
 */
export function describeThrow(thrown: QuickJsErrorShape | string, memoryExhausted: boolean): ThrowDescription {
  const name = typeof thrown === 'string' ? undefined : stringOr(thrown.name);
  const message = typeof thrown === 'string' ? thrown : (stringOr(thrown.message) ?? safeJson(thrown));
  // With the WebAssembly memory at its maximum, QuickJS may not even manage to build the error.
  const outOfMemory = isOutOfMemory(name, message) || (memoryExhausted && ['', 'null', '""'].includes(message));
  const stack = typeof thrown === 'string' ? undefined : stringOr(thrown.stack);
  const where = stack
    ?.split('\n')
    .map((line) => line.trim())
    .find((line) => line.startsWith('at ') && !line.includes('baton-prelude.js'));
  const head = name && name !== 'Error' ? `${name}: ${message}` : message;
  return {
    name,
    message,
    label: `${head}${where ? ` (${where})` : ''}`,
    outOfMemory,
    stackOverflow: /^stack overflow$/i.test(message),
    retryable: typeof thrown !== 'string' && thrown.retryable === true,
    retryAfterMs:
      typeof thrown !== 'string' && typeof thrown.retryAfterMs === 'number' && Number.isFinite(thrown.retryAfterMs) && thrown.retryAfterMs >= 0
        ? thrown.retryAfterMs
        : undefined,
  };
}

/** Whether an error name and message say QuickJS ran out of memory. */
export function isOutOfMemory(name: string | undefined, message: string): boolean {
  return /out of memory/i.test(message) || (name === 'InternalError' && /memory/i.test(message));
}

/** JSON text of `value`, or `String(value)` when it cannot be serialised. */
export function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function stringOr(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}
