/**
 * One outbound HTTP call for agents (axios, Node http adapter), with Baton's error mapping:
 * caller abort → {@link CancelledError}; timeout, network failure, 429 and 5xx →
 * {@link RetryLaterError} (honouring `Retry-After`); other non-2xx → {@link AgentError}.
 *
 * Bodies are sent as JSON; responses are read as a stream and cut at `maxBodyBytes`, so a huge
 * or endless upstream body cannot exhaust memory. Redirects are not followed (a 3xx is an
 * {@link AgentError}): a POST must not silently turn into a GET elsewhere.
 */
import type { Readable } from 'node:stream';
import axios from 'axios';
import { AgentError, CancelledError, RetryLaterError, ValidationError } from '../../lib/index.js';
import { bodyExcerpt, httpStatusError } from '../http-errors.js';

/** Default cap of a response body kept in memory, in bytes (64 KiB). */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** HTTP methods agents may use. */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** One request. */
export interface HttpCallRequest {
  method: HttpMethod;
  /** Absolute `http:` or `https:` URL. */
  url: string;
  /** Extra request headers; `Idempotency-Key` is always overwritten by `idempotencyKey`. */
  headers?: Record<string, string>;
  /** JSON-serialisable body (sent as `application/json`); omitted when `undefined`. */
  body?: unknown;
  /** Budget for the whole exchange (connect, send, headers and body), in milliseconds. */
  timeoutMs: number;
  /** Aborting it cancels the request (→ {@link CancelledError}). */
  signal?: AbortSignal;
  /** Sent as `Idempotency-Key` so that a repeated attempt does not repeat the effect. */
  idempotencyKey?: string;
  /** Response bytes kept; the rest is discarded and `truncated` set (default 64 KiB). */
  maxBodyBytes?: number;
}

/** A 2xx response. */
export interface HttpCallResponse {
  status: number;
  /** Response headers, lower-case names; repeated headers joined with `, `. */
  headers: Record<string, string>;
  /** Parsed JSON when the content type is JSON and the body is complete and valid, else text. */
  body: unknown;
  /** Whether the body was cut at `maxBodyBytes` (a cut body is always returned as text). */
  truncated: boolean;
}

/**
 * Perform one HTTP request.
 *
 * @param request - {@link HttpCallRequest}.
 * @returns the {@link HttpCallResponse} of a 2xx answer.
 * @throws {ValidationError} (field `url`) for a URL that is not absolute http(s).
 * @throws {CancelledError} when `request.signal` aborts before or during the exchange.
 * @throws {RetryLaterError} on timeout, network errors, 429 and 5xx (`retryAfterMs` from
 *   `Retry-After`, seconds or HTTP-date).
 * @throws {AgentError} on any other non-2xx status (message has the status and a body excerpt).
 */
export async function httpCall(request: HttpCallRequest): Promise<HttpCallResponse> {
  const { method, url, body, timeoutMs, signal, idempotencyKey } = request;
  const maxBodyBytes = request.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const target = checkUrl(url);
  const what = `${method} ${target.origin}${target.pathname}`;
  if (signal?.aborted) throw new CancelledError(`${what} was cancelled`);

  const headers = withoutHeader(request.headers ?? {}, 'idempotency-key');
  if (body !== undefined && !Object.keys(headers).some((name) => name.toLowerCase() === 'content-type')) {
    headers['Content-Type'] = 'application/json';
  }
  if (idempotencyKey !== undefined) headers['Idempotency-Key'] = idempotencyKey;
  let payload: Buffer | undefined;
  if (body !== undefined) {
    const json = JSON.stringify(body);
    if (json === undefined) throw new ValidationError('body is not JSON-serialisable', { field: 'body' });
    payload = Buffer.from(json, 'utf8');
  }

  const deadline = AbortSignal.timeout(timeoutMs);
  const abort = signal ? AbortSignal.any([signal, deadline]) : deadline;
  const failure = (err: unknown): Error => {
    if (signal?.aborted) return new CancelledError(`${what} was cancelled`, { cause: err });
    const code = (err as { code?: unknown } | null)?.code;
    if (deadline.aborted || code === 'ECONNABORTED' || code === 'ETIMEDOUT') {
      return new RetryLaterError(`${what} timed out after ${timeoutMs} ms`, { cause: err });
    }
    return networkError(what, err);
  };

  let status: number;
  let responseHeaders: Record<string, string>;
  let text: string;
  let truncated: boolean;
  try {
    const response = await axios.request<Readable>({
      method,
      url: target.href,
      headers,
      data: payload,
      responseType: 'stream',
      validateStatus: () => true,
      maxRedirects: 0,
      signal: abort, // carries the deadline for the whole exchange (axios' `timeout` would not cover the body)
      transformRequest: [(data: unknown) => data],
    });
    status = response.status;
    responseHeaders = flattenHeaders(response.headers as Record<string, unknown>);
    ({ text, truncated } = await readLimited(response.data, maxBodyBytes, abort));
  } catch (err) {
    throw failure(err);
  }

  const isJson = /[/+]json\b/i.test(responseHeaders['content-type'] ?? '');
  let parsed: unknown = text;
  if (isJson && !truncated && text.trim() !== '') {
    try {
      parsed = JSON.parse(text) as unknown;
    } catch {
      parsed = text;
    }
  }

  if (status >= 200 && status <= 299) return { status, headers: responseHeaders, body: parsed, truncated };
  if (status >= 300 && status <= 399) {
    const location = responseHeaders.location;
    throw new AgentError(`${what} answered HTTP ${status} (redirects are not followed${location ? `: ${location}` : ''})`, {
      details: { status },
    });
  }
  throw httpStatusError(what, status, responseHeaders['retry-after'], parsed);
}

/** Parse and check an absolute http(s) URL. @throws {ValidationError} field `url`. */
function checkUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError(`url: expected an absolute http(s) URL, got ${bodyExcerpt(url)}`, { field: 'url' });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ValidationError(`url: expected an http or https URL, got ${parsed.protocol}`, { field: 'url' });
  }
  return parsed;
}

/** Copy of `headers` without `name` (case-insensitive). */
function withoutHeader(headers: Record<string, string>, name: string): Record<string, string> {
  const copy: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() !== name) copy[key] = value;
  return copy;
}

function flattenHeaders(raw: Record<string, unknown>): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined || value === null) continue;
    flat[key.toLowerCase()] = Array.isArray(value) ? value.map(String).join(', ') : String(value);
  }
  return flat;
}

/**
 * Read a response stream as UTF-8, keeping at most `limit` bytes (never splitting a character).
 * @throws the stream's error, or an abort error when `signal` aborts meanwhile.
 */
async function readLimited(
  stream: Readable,
  limit: number,
  signal: AbortSignal,
): Promise<{ text: string; truncated: boolean }> {
  const decoder = new TextDecoder('utf-8');
  const onAbort = (): void => {
    stream.destroy(new Error('aborted while reading the response body'));
  };
  signal.addEventListener('abort', onAbort, { once: true });
  let text = '';
  let size = 0;
  let truncated = false;
  try {
    if (signal.aborted) onAbort();
    for await (const chunk of stream) {
      const bytes: Buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk), 'utf8');
      if (size + bytes.length > limit) {
        text += decoder.decode(bytes.subarray(0, limit - size), { stream: true });
        truncated = true;
        break; // ends the iteration and destroys the stream
      }
      size += bytes.length;
      text += decoder.decode(bytes, { stream: true });
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  // With `stream: true` an incomplete trailing character stays buffered: dropped when truncated.
  if (!truncated) text += decoder.decode();
  return { text, truncated };
}

/** Network-level failure (no HTTP status): transient unless it is a programming error. */
function networkError(what: string, err: unknown): Error {
  if (err instanceof AgentError || err instanceof ValidationError) return err;
  if (axios.isAxiosError(err)) {
    if (err.code === 'ERR_INVALID_URL' || err.code === 'ERR_BAD_OPTION_VALUE' || err.code === 'ERR_BAD_OPTION') {
      return new AgentError(`${what} could not be sent: ${err.message}`, { cause: err });
    }
    return new RetryLaterError(`${what} failed: ${err.code ?? 'network error'} ${err.message}`.trim(), { cause: err });
  }
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return new RetryLaterError(`${what} failed: ${typeof code === 'string' ? `${code} ` : ''}${message}`, { cause: err });
}
