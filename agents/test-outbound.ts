/**
 * Test helper: an {@link OutboundHttp} on Node's `fetch`, speaking the `OutboundRequest` /
 * `OutboundResponse` shapes of `lib/outbound.ts` (no destination policy: tests reach loopback).
 * Not used by production code; the real policy-enforcing client lands with the outbound work.
 */
import { CancelledError, OutputTooLargeError, RetryLaterError, type OutboundHttp, type OutboundRequest } from '../lib/index.js';

const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;

/** Build the request URL with `query` appended. */
function urlOf(request: OutboundRequest): string {
  const url = new URL(request.url);
  for (const [key, value] of Object.entries(request.query ?? {})) url.searchParams.append(key, String(value));
  return url.href;
}

/**
 * A fetch-based `ctx.http` for tests; every request is also pushed to `sent` when given.
 * @throws like {@link OutboundHttp}: `CancelledError` (signal), `RetryLaterError` (timeout,
 *   network), `OutputTooLargeError` (`maxBodyBytes`).
 */
export function fetchHttp(sent?: OutboundRequest[]): OutboundHttp {
  return async (request) => {
    sent?.push(request);
    const headers = new Headers(request.headers ?? {});
    let body: string | Uint8Array | undefined;
    if (typeof request.body === 'string' || request.body instanceof Uint8Array) body = request.body;
    else if (request.body !== undefined) {
      body = JSON.stringify(request.body);
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    }
    const deadline = AbortSignal.timeout(request.timeoutMs);
    const signal = request.signal ? AbortSignal.any([request.signal, deadline]) : deadline;
    try {
      const response = await fetch(urlOf(request), {
        method: request.method,
        headers,
        ...(body === undefined ? {} : { body }),
        signal,
        redirect: request.maxRedirects === 0 ? 'manual' : 'follow',
      });
      const bytes = new Uint8Array(await response.arrayBuffer());
      if (bytes.byteLength > (request.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES)) {
        throw new OutputTooLargeError(`response of ${bytes.byteLength} bytes exceeds maxBodyBytes`);
      }
      const responseHeaders: Record<string, string> = {};
      response.headers.forEach((value, name) => {
        responseHeaders[name] = value;
      });
      const text = new TextDecoder().decode(bytes);
      let data: unknown = text;
      if (request.responseType === 'arraybuffer') data = bytes;
      else if (request.responseType !== 'text' && /[/+]json\b/i.test(responseHeaders['content-type'] ?? '') && text.trim() !== '') {
        try {
          data = JSON.parse(text) as unknown;
        } catch {
          data = text;
        }
      }
      return { status: response.status, headers: responseHeaders, data };
    } catch (err) {
      if (err instanceof OutputTooLargeError) throw err;
      if (request.signal?.aborted) throw new CancelledError(`${request.method} ${request.url} was cancelled`, { cause: err });
      if (deadline.aborted) throw new RetryLaterError(`${request.method} ${request.url} timed out after ${request.timeoutMs} ms`, { cause: err });
      throw new RetryLaterError(`${request.method} ${request.url} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  };
}
