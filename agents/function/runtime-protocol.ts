/**
 * Messages between the function runtime (main thread, `runtime.ts`) and its worker threads
 * (`runtime-thread.ts`). Types only. Everything crosses by structured clone: JSON text, plain
 * records and `Uint8Array` bytes.
 */

/** Values of the abort flag (an `Int32Array` over a `SharedArrayBuffer`, index 0). */
export const ABORT_NONE = 0;
/** The call's deadline passed. */
export const ABORT_TIMEOUT = 1;
/** The caller's `context.signal` aborted (or the runtime is closing). */
export const ABORT_CANCELLED = 2;

/** What a thread receives when it starts (`workerData`). */
export interface ThreadData {
  /** 4 bytes: the abort flag the main thread sets while the thread is busy. */
  abortFlag: SharedArrayBuffer;
  /** Largest output JSON accepted, in bytes (UTF-8). */
  outputMaxBytes: number;
}

/** The parts of the step context the isolate's `ctx` shows (all JSON-safe). */
export interface IsolateInfo {
  runId: string;
  stepId: string;
  attempt: number;
  idempotencyKey: string;
  run: { id: string; definition: { slug: string; version: number } };
  env: Record<string, string>;
  /** Declared secret names, in declaration order. */
  secretNames: string[];
}

/** Main → thread: run one call. */
export interface RunMessage {
  type: 'run';
  callId: number;
  code: string;
  inputJson: string;
  info: IsolateInfo;
  /** Declared secrets' values (`undefined` when declared but not stored). */
  secrets: Record<string, string | undefined>;
  timeoutMs: number;
  memoryMb: number;
  /** Epoch milliseconds after which the call is out of time. */
  deadline: number;
}

/** Main → thread: the answer to a {@link HostMessage}. */
export interface ReplyMessage {
  type: 'reply';
  callId: number;
  id: number;
  ok: boolean;
  /** JSON text: the result (ok) or a {@link HostErrorShape} (not ok). */
  json: string;
  bytes?: Uint8Array;
}

/** Main → thread: the abort flag was set; wake up if waiting for replies. */
export interface StopMessage {
  type: 'stop';
  callId: number;
}

export type ToThread = RunMessage | ReplyMessage | StopMessage;

/** Host operations the isolate may ask for. */
export type HostOp = 'http' | 'saveBuffer' | 'deliverable' | 'progress';

/** Thread → main: perform a host operation for the running call. */
export interface HostMessage {
  type: 'host';
  callId: number;
  id: number;
  op: HostOp;
  /** JSON text of the operation's arguments. */
  payload: string;
  bytes?: Uint8Array;
}

/** Thread → main: one (already capped) log line of the running call. */
export interface LogMessage {
  type: 'log';
  callId: number;
  level: 'info' | 'warn' | 'error';
  line: string;
}

/** How a call failed, as the thread classifies it. */
export type FailureKind = 'timeout' | 'cancelled' | 'output' | 'missing-secret' | 'memory' | 'agent' | 'validation' | 'retry';

/** Thread → main: the call ended. */
export type DoneMessage =
  | { type: 'done'; callId: number; ok: true; json: string }
  | { type: 'done'; callId: number; ok: false; kind: FailureKind; message: string; retryAfterMs?: number };

/** Thread → main: the thread has loaded and takes calls (calls are dispatched only then). */
export interface ReadyMessage {
  type: 'ready';
}

export type FromThread = ReadyMessage | HostMessage | LogMessage | DoneMessage;

/** An error of a host operation, as the isolate sees it. */
export interface HostErrorShape {
  name: string;
  message: string;
  code?: string;
}
