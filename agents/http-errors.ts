/**
 * How agents turn upstream HTTP outcomes into Baton's error taxonomy (shared by the `http`
 * implementation and the LLM calls of `llm` and `summarizer`).
 *
 * - 429 and 5xx → {@link RetryLaterError} (transient; `retryAfterMs` from `Retry-After`).
 * - any other non-2xx → {@link AgentError} with the status and a short body excerpt.
 */
import { AgentError, RetryLaterError } from '../lib/index.js';

/** Longest body excerpt quoted in an error message, in characters. */
export const BODY_EXCERPT_CHARS = 200;

/**
 * Parse an HTTP `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
 *
 * @param value - the header value (`"120"`, `"1.5"`, `"Wed, 21 Oct 2015 07:28:00 GMT"`).
 * @param nowMs - current time in epoch milliseconds, for HTTP-dates (default `Date.now()`).
 * @returns the wait in milliseconds (a date in the past gives 0), or `undefined` when the value
 *   is missing or unparseable.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  // An HTTP-date always names a weekday or month; this keeps bare numbers like "-5" out of Date.parse.
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/** Whether a status is worth retrying later (429 Too Many Requests and every 5xx). */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599);
}

/**
 * First {@link BODY_EXCERPT_CHARS} characters of a body, whitespace collapsed, for messages.
 * @param body - text, or any JSON value (stringified).
 */
export function bodyExcerpt(body: unknown): string {
  let text: string;
  if (typeof body === 'string') text = body;
  else {
    try {
      text = JSON.stringify(body) ?? '';
    } catch {
      text = String(body);
    }
  }
  const compact = text.replace(/\s+/g, ' ').trim();
  return compact.length > BODY_EXCERPT_CHARS ? `${compact.slice(0, BODY_EXCERPT_CHARS)}…` : compact;
}

/**
 * The error for a non-2xx response.
 *
 * @param what - who answered, for the message (e.g. `POST https://host/path`, `LLM`).
 * @param status - HTTP status code.
 * @param retryAfter - raw `Retry-After` header value, if any.
 * @param body - response body (text or parsed JSON), quoted as a short excerpt.
 * @returns a {@link RetryLaterError} for 429/5xx (with `retryAfterMs`), else an {@link AgentError};
 *   both carry `details.status`.
 */
export function httpStatusError(
  what: string,
  status: number,
  retryAfter: string | undefined,
  body: unknown,
): RetryLaterError | AgentError {
  const excerpt = bodyExcerpt(body);
  const message = `${what} answered HTTP ${status}${excerpt ? `: ${excerpt}` : ''}`;
  if (isRetryableStatus(status)) {
    const retryAfterMs = parseRetryAfter(retryAfter);
    return new RetryLaterError(message, {
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      details: { status },
    });
  }
  return new AgentError(message, { details: { status } });
}
