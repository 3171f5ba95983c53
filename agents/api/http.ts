/**
 * `http` (type `api`): one generic HTTP request through `ctx.http` (the outbound policy). This is
 * also what the engine runs for `type: http` steps (with the default config `{}`).
 *
 * Step input `{method?, url?, headers?, query?, body?, timeoutMs?, okStatus?}` (`payload` is
 * accepted as an alias of `body`, the marketing-swarm shape) → `{status, headers, body}`.
 *
 * Config (all optional) fixes or defaults parts of the request:
 * - `url` fixes the URL (a step `url` is then refused); otherwise the step's `url`, else the
 *   allow-listed environment variable `urlEnv` (`ctx.env`), else the secret `urlSecret`
 *   (`ctx.secrets`) is used;
 * - `method` fixes the method (default: the step's, else `POST` with a body and `GET` without);
 * - `headers` are added (config wins over the step), `headersFromSecrets: {Header: SECRET}` adds
 *   headers whose values are secrets;
 * - `timeoutMs` (default {@link DEFAULT_HTTP_TIMEOUT_MS}) is the default budget, `maxTimeoutMs`
 *   bounds a step's `timeoutMs`; `okStatus` adds statuses accepted besides 2xx; `maxBodyBytes`
 *   caps the response (default 1 MiB).
 *
 * Always sends `Idempotency-Key: ctx.idempotencyKey`. Outcomes: 2xx or a status in `okStatus`
 * (step's or config's) → output; 429/5xx → `RetryLaterError` honouring `Retry-After`; any other
 * status → `AgentError` with the status and a body excerpt. Redirects are followed only for
 * GET/HEAD (at most 5); for other methods a 3xx is returned like any other status.
 */
import { z } from 'zod';
import { MissingSecretError, ValidationError, type OutboundMethod } from '../../lib/index.js';
import { httpStatusError } from '../http-errors.js';
import type { AgentContext, AgentImplementation } from '../types.js';
import { parseInput } from '../validation.js';

/** Default budget of one exchange, in milliseconds. */
export const DEFAULT_HTTP_TIMEOUT_MS = 15_000;
/** Default upper bound of a step's `timeoutMs`, in milliseconds. */
export const DEFAULT_HTTP_MAX_TIMEOUT_MS = 120_000;
/** Default cap of the response body, in bytes (1 MiB). */
export const DEFAULT_HTTP_MAX_BODY_BYTES = 1024 * 1024;

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'] as const satisfies readonly OutboundMethod[];
/** Header names a step or config may not set (the agent or the transport owns them). */
const RESERVED_HEADERS = new Set(['idempotency-key', 'content-length', 'host', 'transfer-encoding', 'connection']);
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { error: 'expected an HTTP header name' });
const headerValue = z.string().refine((v) => !/[\r\n]/.test(v), { error: 'header values may not contain line breaks' });
const headers = z
  .record(headerName, headerValue)
  .refine((h) => Object.keys(h).every((name) => !RESERVED_HEADERS.has(name.toLowerCase())), {
    error: `headers may not set ${[...RESERVED_HEADERS].join(', ')}`,
  });
const status = z.number().int().min(100).max(599);
const method = z.preprocess((v) => (typeof v === 'string' ? v.toUpperCase() : v), z.enum(METHODS));
const httpUrl = z
  .string({ error: 'expected an http(s) URL string' })
  .refine(isHttpUrl, { error: 'expected an absolute http or https URL' });

/** The entry's `config:`. */
export const HttpConfig = z
  .object({
    url: httpUrl.optional(),
    urlEnv: z.string().regex(ENV_NAME).optional(),
    urlSecret: z.string().regex(ENV_NAME).optional(),
    method: method.optional(),
    headers: headers.optional(),
    headersFromSecrets: z.record(headerName, z.string().regex(ENV_NAME)).optional(),
    timeoutMs: z.number().int().positive().max(600_000).default(DEFAULT_HTTP_TIMEOUT_MS),
    maxTimeoutMs: z.number().int().positive().max(600_000).default(DEFAULT_HTTP_MAX_TIMEOUT_MS),
    okStatus: z.array(status).max(50).optional(),
    maxBodyBytes: z.number().int().positive().max(64 * 1024 * 1024).default(DEFAULT_HTTP_MAX_BODY_BYTES),
  })
  .strict()
  .refine((c) => c.timeoutMs <= c.maxTimeoutMs, { error: 'timeoutMs must not exceed maxTimeoutMs', path: ['timeoutMs'] })
  .refine((c) => Object.keys(c.headersFromSecrets ?? {}).every((name) => !RESERVED_HEADERS.has(name.toLowerCase())), {
    error: `headersFromSecrets may not set ${[...RESERVED_HEADERS].join(', ')}`,
    path: ['headersFromSecrets'],
  });
export type HttpConfig = z.infer<typeof HttpConfig>;

/** Step input. */
export const HttpInput = z
  .object({
    method: method.optional(),
    url: httpUrl.optional(),
    headers: headers.optional(),
    query: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
    body: z.unknown().optional(),
    payload: z.unknown().optional(),
    timeoutMs: z.number().int().positive().optional(),
    okStatus: z.array(status).max(50).optional(),
  })
  .strict()
  .refine((input) => input.body === undefined || input.payload === undefined, {
    error: 'give body or payload, not both',
    path: ['payload'],
  });
export type HttpInput = z.infer<typeof HttpInput>;

/** Step output. */
export interface HttpOutput {
  status: number;
  /** Response headers, lower-case names. */
  headers: Record<string, string>;
  /** Parsed JSON when the response is JSON, else text. */
  body: unknown;
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/** A declared secret's value. @throws {MissingSecretError} when it is not stored. */
function secretValue(ctx: AgentContext, name: string): string {
  const value = ctx.secrets[name];
  if (value === undefined) throw new MissingSecretError(`secret ${name} is not set`, { field: name });
  return value;
}

/** The URL: config `url`, else the step's, else `urlEnv`, else `urlSecret`. @throws {ValidationError} field `url`. */
function resolveUrl(input: HttpInput, config: HttpConfig, ctx: AgentContext): string {
  if (config.url !== undefined) {
    if (input.url !== undefined && input.url !== config.url) {
      throw new ValidationError('url: fixed by the agent configuration; leave it out', { field: 'url' });
    }
    return config.url;
  }
  if (input.url !== undefined) return input.url;
  const fromEnv = config.urlEnv === undefined ? undefined : ctx.env[config.urlEnv];
  const fromSecret = config.urlSecret === undefined ? undefined : ctx.secrets[config.urlSecret];
  const url = fromEnv ?? fromSecret;
  const sources = [config.urlEnv && `environment variable ${config.urlEnv}`, config.urlSecret && `secret ${config.urlSecret}`]
    .filter(Boolean)
    .join(' or ');
  if (url === undefined) throw new ValidationError(`url: required${sources ? ` (or set the ${sources})` : ''}`, { field: 'url' });
  if (!isHttpUrl(url)) throw new ValidationError(`url: the ${sources} is not an absolute http(s) URL`, { field: 'url' });
  return url;
}

/**
 * Perform the request of one step.
 * @throws {ValidationError} for invalid input (field named), {@link MissingSecretError} for an
 *   unset secret the config needs, {@link RetryLaterError} / {@link AgentError} for statuses (see
 *   the module notes), and what `ctx.http` throws (timeouts and network errors as
 *   `RetryLaterError`, `OutboundDeniedError`, `CancelledError`, `OutputTooLargeError`).
 */
async function runHttp(input: unknown, ctx: AgentContext, config: HttpConfig): Promise<HttpOutput> {
  const parsed = parseInput(HttpInput, input);
  const url = resolveUrl(parsed, config, ctx);
  const body = parsed.body ?? parsed.payload;
  const verb: OutboundMethod = config.method ?? parsed.method ?? (body === undefined ? 'GET' : 'POST');
  if (body !== undefined && (verb === 'GET' || verb === 'HEAD')) {
    throw new ValidationError(`body: a ${verb} request cannot have a body`, { field: 'body' });
  }
  if (parsed.timeoutMs !== undefined && parsed.timeoutMs > config.maxTimeoutMs) {
    throw new ValidationError(`timeoutMs: at most ${config.maxTimeoutMs}`, { field: 'timeoutMs' });
  }
  const secretHeaders = Object.fromEntries(
    Object.entries(config.headersFromSecrets ?? {}).map(([name, secret]) => [name, secretValue(ctx, secret)]),
  );
  const target = new URL(url);
  const what = `${verb} ${target.origin}${target.pathname}`;
  const response = await ctx.http({
    method: verb,
    url,
    headers: {
      Accept: 'application/json, text/plain;q=0.9, */*;q=0.1',
      ...parsed.headers,
      ...config.headers,
      ...secretHeaders,
      'Idempotency-Key': ctx.idempotencyKey,
    },
    ...(parsed.query === undefined ? {} : { query: parsed.query }),
    ...(body === undefined ? {} : { body }),
    timeoutMs: parsed.timeoutMs ?? config.timeoutMs,
    signal: ctx.signal,
    maxBodyBytes: config.maxBodyBytes,
    maxRedirects: verb === 'GET' || verb === 'HEAD' ? 5 : 0,
  });
  const accepted = new Set([...(config.okStatus ?? []), ...(parsed.okStatus ?? [])]);
  const ok = (response.status >= 200 && response.status <= 299) || accepted.has(response.status);
  ctx.logger.info({ agent: 'http', status: response.status, host: target.host, ok }, 'http request done');
  if (ok) return { status: response.status, headers: response.headers, body: response.data };
  throw httpStatusError(what, response.status, response.headers['retry-after'], response.data);
}

/** The `http` implementation. */
export const httpImplementation: AgentImplementation<HttpConfig> = {
  name: 'http',
  type: 'api',
  description: 'One HTTP request under the outbound policy, with the idempotency key; 429/5xx are retried honouring Retry-After.',
  config: HttpConfig,
  run: runHttp,
};
