/**
 * The one outbound policy for every outgoing request Baton makes on a run's behalf (http steps,
 * api agents, `ctx.require('axios')` in functions, webhooks).
 *
 * CONTRACT (types only so far; the implementation lands with the outbound-policy work):
 * `createOutboundHttp(policy)` returns an {@link OutboundHttp}.
 */

/** HTTP methods outgoing requests may use. */
export type OutboundMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';

/** How the response body is returned in {@link OutboundResponse.data}. */
export type OutboundResponseType = 'json' | 'text' | 'arraybuffer';

/** One outgoing request. */
export interface OutboundRequest {
  method: OutboundMethod;
  /** Absolute `http:` or `https:` URL. */
  url: string;
  /** Request headers (any case). */
  headers?: Record<string, string>;
  /** Query parameters appended to `url`. */
  query?: Record<string, string | number | boolean>;
  /**
   * Body: a `string` or `Uint8Array` is sent as is; anything else (not `undefined`) as JSON with
   * `Content-Type: application/json` unless a content type is given.
   */
  body?: unknown;
  /** Budget for the whole exchange (connect, send, headers and body), in milliseconds. */
  timeoutMs: number;
  /** Aborting it cancels the request (→ `CancelledError`). */
  signal?: AbortSignal;
  /**
   * `json` (default): parsed JSON when the content type is JSON, else text; `text`; `arraybuffer`:
   * the raw bytes as a `Uint8Array`.
   */
  responseType?: OutboundResponseType;
  /** Response bytes accepted; a longer body fails with `OutputTooLargeError`. Default 10 MiB. */
  maxBodyBytes?: number;
  /** Redirects followed (each hop checked against the policy); default 5, 0 = none. */
  maxRedirects?: number;
}

/** A response of any status (the caller decides what a status means). */
export interface OutboundResponse {
  status: number;
  /** Response headers, lower-case names; repeated headers joined with `, `. */
  headers: Record<string, string>;
  /** See {@link OutboundRequest.responseType}. */
  data: unknown;
}

/**
 * Perform one request under the outbound policy.
 * @throws {OutboundDeniedError} when the destination (after DNS resolution, or on a redirect) is
 *   not allowed.
 * @throws {CancelledError} when `signal` aborts.
 * @throws {RetryLaterError} on timeout and network errors (connection refused or reset, DNS).
 * @throws {OutputTooLargeError} when the body exceeds `maxBodyBytes`.
 * @throws {ValidationError} (field `url`) for a URL that is not absolute http(s).
 */
export type OutboundHttp = (request: OutboundRequest) => Promise<OutboundResponse>;

/** The policy's settings (from `config.outbound` and `NODE_ENV`). */
export interface OutboundPolicy {
  /**
   * Hosts (exact names, or `*.example.com`) and CIDRs (`10.0.0.0/8`, `::1/128`) that may be reached
   * although they resolve to loopback, link-local, private or cloud-metadata addresses.
   */
  allow: readonly string[];
}
