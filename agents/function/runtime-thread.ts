/**
 * Entry file of one function-runtime worker thread (started by `runtime.ts`). It runs one call at
 * a time: a fresh QuickJS runtime and context per call (memory limit via the module's
 * WebAssembly memory maximum, stack limit, interrupt handler), the isolate prelude, the user's
 * `main(input, ctx)`, and QuickJS's job queue until main's promise settles.
 *
 * Time: the interrupt handler stops the code when the deadline passes or when the main thread
 * sets the shared abort flag (this thread is busy inside QuickJS then and cannot read messages).
 * While main awaits host calls this thread waits for replies; the main thread also sends `stop`
 * to wake it. Host calls (`http`, assets, deliverables, progress) are messages answered by the
 * main thread; encodings, hashes and URL parsing are done here with Node.
 *
 * The output crosses as JSON text, checked against `outputMaxBytes` before it is sent.
 */
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import type { QuickJSContext, QuickJSDeferredPromise, QuickJSHandle, QuickJSRuntime } from 'quickjs-emscripten';
import { ISOLATE_PRELUDE, ISOLATE_SECTIONS } from './runtime-prelude.js';
import { codekitSource } from './codekit/bundle-path.js';
import {
  ABORT_CANCELLED,
  ABORT_TIMEOUT,
  type DoneMessage,
  type FailureKind,
  type FromThread,
  type HostOp,
  type ReplyMessage,
  type RunMessage,
  type ThreadData,
  type ToThread,
} from './runtime-protocol.js';
import {
  MAX_STACK_BYTES,
  QuickJsModuleCache,
  SandboxThrow,
  describeThrow,
  dumpError,
  isOutOfMemory,
  unwrap,
} from './quickjs-support.js';

/** At most this many log lines are forwarded per call. */
const MAX_LOG_LINES = 100;
/** Each forwarded log line is cut to this many characters. */
const MAX_LOG_LINE_CHARS = 2000;
/** Modules kept per thread for distinct memory limits. */
const MAX_CACHED_MODULES = 2;
const MIB = 1024 * 1024;
/** Largest JSON text of a host call's arguments (bytes, e.g. a Buffer body, cross separately). */
const MAX_HOST_PAYLOAD_CHARS = 4 * MIB;
const HOST_OPS: readonly HostOp[] = ['http', 'saveBuffer', 'deliverable', 'progress'];
const ENCODINGS = new Set<BufferEncoding>(['utf8', 'hex', 'base64', 'base64url', 'latin1', 'ascii', 'utf16le']);

const port = parentPort;
if (!port) throw new Error('runtime-thread.ts must run as a worker thread');
const data = workerData as ThreadData;
const abortFlag = new Int32Array(data.abortFlag);
const modules = new QuickJsModuleCache(MAX_CACHED_MODULES);

/** A failure classified here, with the message the caller will see. */
class Failure extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    /** For `retry`: the wait the code asked for, in milliseconds. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** State of the call in progress. */
interface Call {
  message: RunMessage;
  /** Host calls sent and not answered yet, by id. */
  pending: Map<number, QuickJSDeferredPromise>;
  inbox: ReplyMessage[];
  wake: (() => void) | undefined;
  logLines: number;
}

let current: Call | undefined;
let nextHostId = 1;

function post(message: FromThread, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(message, transfer);
}

port.on('message', (message: ToThread) => {
  if (message.type === 'run') {
    void runCall(message);
    return;
  }
  const call = current;
  if (!call || call.message.callId !== message.callId) return; // a late answer to an ended call
  if (message.type === 'reply') call.inbox.push(message);
  call.wake?.();
});

// Load the QuickJS module of the smallest common limit now, so the first call does not pay for it.
modules.moduleFor(16 * MIB).module.then(
  () => post({ type: 'ready' }),
  () => post({ type: 'ready' }),
);

/** Why the running call must stop, if it must. */
function stopReason(call: Call): 'timeout' | 'cancelled' | undefined {
  const flag = Atomics.load(abortFlag, 0);
  if (flag === ABORT_CANCELLED) return 'cancelled';
  if (flag === ABORT_TIMEOUT || Date.now() > call.message.deadline) return 'timeout';
  return undefined;
}

async function runCall(message: RunMessage): Promise<void> {
  const call: Call = { message, pending: new Map(), inbox: [], wake: undefined, logLines: 0 };
  current = call;
  let done: DoneMessage;
  try {
    const json = await execute(call);
    const bytes = Buffer.byteLength(json, 'utf8');
    if (bytes > data.outputMaxBytes) {
      throw new Failure('output', `function output is ${bytes} bytes of JSON, more than the ${data.outputMaxBytes} allowed`);
    }
    done = { type: 'done', callId: message.callId, ok: true, json };
  } catch (err) {
    const failure = err instanceof Failure ? err : new Failure('agent', `function failed in the runtime: ${String(err)}`);
    done = {
      type: 'done',
      callId: message.callId,
      ok: false,
      kind: failure.kind,
      message: failure.message,
      ...(failure.retryAfterMs === undefined ? {} : { retryAfterMs: failure.retryAfterMs }),
    };
  } finally {
    current = undefined;
  }
  post(done);
}

/** Run the call in a fresh QuickJS runtime; returns main's result as JSON text. */
async function execute(call: Call): Promise<string> {
  const { memoryMb, timeoutMs } = call.message;
  const memoryBytes = memoryMb * MIB;
  const entry = modules.moduleFor(memoryBytes);
  const module = await entry.module;
  const runtime = module.newRuntime();
  const growFailuresBefore = entry.growFailures;
  let context: QuickJSContext | undefined;
  let hostFailure = false;
  try {
    runtime.setMemoryLimit(memoryBytes);
    runtime.setMaxStackSize(MAX_STACK_BYTES);
    runtime.setInterruptHandler(() => stopReason(call) !== undefined);
    context = runtime.newContext();
    return await evaluate(call, context, runtime);
  } catch (err) {
    const reason = stopReason(call);
    if (reason === 'cancelled') throw new Failure('cancelled', 'function was cancelled');
    if (reason === 'timeout') throw new Failure('timeout', `function exceeded its time limit of ${timeoutMs} ms`);
    if (err instanceof Failure) throw err;
    const memoryExhausted = entry.growFailures > growFailuresBefore;
    const memoryError = new Failure('memory', `function exceeded its memory limit of ${memoryMb} MiB`);
    if (err instanceof SandboxThrow) {
      const described = describeThrow(err.thrown, memoryExhausted);
      if (described.outOfMemory) throw memoryError;
      if (described.stackOverflow) throw new Failure('agent', 'function exceeded the sandbox stack (nesting too deep)');
      if (described.name === 'MissingSecretError') throw new Failure('missing-secret', described.message);
      if (described.retryable) throw new Failure('retry', `function threw: ${described.label}`, described.retryAfterMs);
      throw new Failure('agent', `function threw: ${described.label}`);
    }
    hostFailure = true;
    if (err instanceof RangeError && /call stack/i.test(err.message)) {
      throw new Failure('agent', 'function exceeded the sandbox stack (nesting too deep)');
    }
    if (memoryExhausted || (err instanceof Error && isOutOfMemory(undefined, err.message))) throw memoryError;
    throw new Failure('agent', `function failed in the runtime: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    for (const deferred of call.pending.values()) if (deferred.alive) deferred.dispose();
    call.pending.clear();
    if (hostFailure) {
      // The WebAssembly code was interrupted by a host exception: never touch this module again.
      modules.discard(entry);
    } else {
      try {
        context?.dispose();
        runtime.dispose();
      } catch {
        modules.discard(entry);
      }
    }
  }
}

/** Prelude, user code, main, the job loop and the output. */
async function evaluate(call: Call, context: QuickJSContext, runtime: QuickJSRuntime): Promise<string> {
  const handles: QuickJSHandle[] = [];
  const keep = (handle: QuickJSHandle): QuickJSHandle => {
    handles.push(handle);
    return handle;
  };
  try {
    installHost(call, context);
    const helpers = keep(unwrap(context, context.evalCode(ISOLATE_PRELUDE, 'baton-prelude.js')));
    keep(unwrap(context, context.evalCode(call.message.code, 'function.js')));
    const main = keep(context.getProp(context.global, 'main'));
    if (context.typeof(main) !== 'function') {
      throw new Failure('agent', 'the function code must define `function main(input, ctx) { ... }`');
    }
    const invoke = keep(context.getProp(helpers, 'call'));
    const inputHandle = keep(context.newString(call.message.inputJson));
    const infoHandle = keep(context.newString(JSON.stringify(call.message.info)));
    let result = keep(unwrap(context, context.callFunction(invoke, context.undefined, main, inputHandle, infoHandle)));

    const isPromise = keep(context.getProp(helpers, 'isPromise'));
    const check = keep(unwrap(context, context.callFunction(isPromise, context.undefined, result)));
    if (context.dump(check) === true) result = keep(await settle(call, context, runtime, result));

    const out = keep(context.getProp(helpers, 'out'));
    const json = keep(unwrap(context, context.callFunction(out, context.undefined, result)));
    if (context.typeof(json) !== 'string') {
      throw new Failure('agent', 'main must return a JSON-serialisable value (got undefined, a function or a symbol)');
    }
    return context.getString(json);
  } finally {
    for (const handle of handles.reverse()) if (handle.alive) handle.dispose();
  }
}

/** Drive the job queue and host replies until `promise` settles; returns a new handle to its value. */
async function settle(
  call: Call,
  context: QuickJSContext,
  runtime: QuickJSRuntime,
  promise: QuickJSHandle,
): Promise<QuickJSHandle> {
  for (;;) {
    const state = context.getPromiseState(promise);
    if (state.type === 'fulfilled') return state.value;
    if (state.type === 'rejected') throw new SandboxThrow(dumpError(context, state.error));
    if (stopReason(call)) throw new SandboxThrow({ message: 'interrupted' });
    if (runtime.hasPendingJob()) {
      const jobs = runtime.executePendingJobs();
      if (jobs.error) throw new SandboxThrow(dumpError(context, jobs.error));
      continue;
    }
    if (call.inbox.length === 0) {
      if (call.pending.size === 0) {
        throw new Failure('agent', 'main returned a promise that never settles (no timers exist in the sandbox)');
      }
      await new Promise<void>((resolve) => {
        call.wake = resolve;
      });
      call.wake = undefined;
    }
    for (const reply of call.inbox.splice(0)) deliver(call, context, reply);
  }
}

/** Settle the isolate promise of a host call with `{ok, json, bytes?}`. */
function deliver(call: Call, context: QuickJSContext, reply: ReplyMessage): void {
  const deferred = call.pending.get(reply.id);
  if (!deferred) return;
  call.pending.delete(reply.id);
  const answer = context.newObject();
  try {
    context.setProp(answer, 'ok', reply.ok ? context.true : context.false);
    const json = context.newString(reply.json);
    context.setProp(answer, 'json', json);
    json.dispose();
    if (reply.bytes) {
      const bytes = newBytes(context, reply.bytes);
      context.setProp(answer, 'bytes', bytes);
      bytes.dispose();
    }
    deferred.resolve(answer);
  } finally {
    answer.dispose();
    deferred.dispose();
  }
}

/** Copy an isolate ArrayBuffer out of the WebAssembly heap. */
function readBytes(context: QuickJSContext, handle: QuickJSHandle): Buffer {
  const lifetime = context.getArrayBuffer(handle);
  try {
    return Buffer.from(lifetime.value);
  } finally {
    lifetime.dispose();
  }
}

/** A new isolate ArrayBuffer holding a copy of `bytes`. */
function newBytes(context: QuickJSContext, bytes: Uint8Array): QuickJSHandle {
  return context.newArrayBuffer(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function optionalString(context: QuickJSContext, handle: QuickJSHandle | undefined): string | undefined {
  return handle === undefined || context.typeof(handle) === 'undefined' ? undefined : context.getString(handle);
}

function encodingOf(name: string): BufferEncoding {
  const encoding = name as BufferEncoding;
  if (!ENCODINGS.has(encoding)) throw new TypeError(`Unknown encoding: ${name}`);
  return encoding;
}

/** The WHATWG parts of a URL as JSON (what the prelude's `URL` keeps). */
function urlParts(url: URL): string {
  const { href, origin, protocol, username, password, host, hostname, port: p, pathname, search, hash } = url;
  return JSON.stringify({ href, origin, protocol, username, password, host, hostname, port: p, pathname, search, hash });
}

type UrlPart = 'href' | 'protocol' | 'username' | 'password' | 'host' | 'hostname' | 'port' | 'pathname' | 'search' | 'hash';
const URL_SETTABLE = new Set<string>(['href', 'protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname', 'search', 'hash']);

/** Define the global `__baton` the prelude captures (see runtime-prelude.ts for the list). */
function installHost(call: Call, context: QuickJSContext): void {
  const hostObject = context.newObject();
  const define = (name: string, fn: (...args: QuickJSHandle[]) => QuickJSHandle | undefined): void => {
    const handle = context.newFunction(name, fn);
    context.setProp(hostObject, name, handle);
    handle.dispose();
  };
  const str = (h: QuickJSHandle | undefined): string => (h === undefined ? '' : context.getString(h));

  define('encode', (value, encoding) => newBytes(context, Buffer.from(str(value), encodingOf(str(encoding)))));
  define('decode', (bytes, encoding) => {
    if (!bytes) throw new TypeError('decode: bytes expected');
    return context.newString(readBytes(context, bytes).toString(encodingOf(str(encoding))));
  });
  define('digest', (algorithm, bytes, key) => {
    if (!bytes) throw new TypeError('digest: bytes expected');
    const alg = str(algorithm);
    const input = readBytes(context, bytes);
    const hmacKey = key === undefined || context.typeof(key) === 'undefined' ? undefined : readBytes(context, key);
    const digest = hmacKey ? createHmac(alg, hmacKey).update(input).digest() : createHash(alg).update(input).digest();
    return newBytes(context, digest);
  });
  define('randomBytes', (size) => newBytes(context, randomBytes(size === undefined ? 0 : context.getNumber(size))));
  define('randomUUID', () => context.newString(randomUUID()));
  define('urlParse', (input, base) => {
    try {
      return context.newString(urlParts(new URL(str(input), optionalString(context, base))));
    } catch {
      return context.null;
    }
  });
  define('urlSet', (href, part, value) => {
    const name = str(part);
    if (!URL_SETTABLE.has(name)) throw new TypeError(`URL: ${name} cannot be set`);
    try {
      const url = new URL(str(href));
      url[name as UrlPart] = str(value);
      return context.newString(urlParts(url));
    } catch {
      return context.null;
    }
  });
  define('qsParse', (text) => context.newString(JSON.stringify([...new URLSearchParams(str(text))])));
  define('qsSerialize', (pairs) => {
    const list = JSON.parse(str(pairs)) as [string, string][];
    return context.newString(new URLSearchParams(list).toString());
  });
  define('source', (name) => {
    const key = str(name);
    if (key === 'codekit') return context.newString(codekitSource());
    const source = Object.prototype.hasOwnProperty.call(ISOLATE_SECTIONS, key) ? ISOLATE_SECTIONS[key] : undefined;
    if (source === undefined) throw new TypeError(`unknown prelude section ${key}`);
    return context.newString(source);
  });
  define('secret', (name) => {
    const key = str(name);
    const value = Object.prototype.hasOwnProperty.call(call.message.secrets, key) ? call.message.secrets[key] : undefined;
    return value === undefined ? context.undefined : context.newString(value);
  });
  define('log', (level, line) => {
    if (call.logLines >= MAX_LOG_LINES) return undefined;
    call.logLines += 1;
    const lvl = str(level);
    const text = str(line);
    post({
      type: 'log',
      callId: call.message.callId,
      level: lvl === 'warn' || lvl === 'error' ? lvl : 'info',
      line: text.length > MAX_LOG_LINE_CHARS ? `${text.slice(0, MAX_LOG_LINE_CHARS)}…` : text,
    });
    if (call.logLines === MAX_LOG_LINES) {
      post({ type: 'log', callId: call.message.callId, level: 'warn', line: 'further log output of this call dropped' });
    }
    return undefined;
  });
  define('call', (op, payload, bytes) => {
    const name = str(op) as HostOp;
    if (!HOST_OPS.includes(name)) throw new TypeError(`unknown host operation ${name}`);
    const text = str(payload);
    // The main thread parses the payload on its event loop: keep that bounded.
    if (text.length > MAX_HOST_PAYLOAD_CHARS) {
      throw new RangeError(`${name}: arguments of ${text.length} characters of JSON exceed ${MAX_HOST_PAYLOAD_CHARS} (send large bodies as a Buffer)`);
    }
    const body = bytes === undefined || context.typeof(bytes) === 'undefined' ? undefined : readBytes(context, bytes);
    const id = nextHostId++;
    const deferred = context.newPromise();
    call.pending.set(id, deferred);
    const copy = body ? new Uint8Array(body) : undefined;
    post(
      { type: 'host', callId: call.message.callId, id, op: name, payload: text, ...(copy ? { bytes: copy } : {}) },
      copy ? [copy.buffer] : [],
    );
    return deferred.handle;
  });
  context.setProp(context.global, '__baton', hostObject);
  hostObject.dispose();
}
