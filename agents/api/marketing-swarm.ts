/**
 * `marketing-swarm` (type `api`): hands a payload to an external marketing service by POSTing it
 * as JSON, with the step's idempotency key so that a re-delivered step is not acted on twice.
 */
import { z } from 'zod';
import type { AgentContext, NamedAgent } from '../types.js';
import { parseInput } from '../validation.js';
import { httpCall } from './http-call.js';

/** Budget of the whole HTTP exchange, in milliseconds. */
export const MARKETING_SWARM_TIMEOUT_MS = 15_000;
/** Response bytes kept in the step output (64 KiB). */
export const MARKETING_SWARM_MAX_BODY_BYTES = 64 * 1024;

/** Header names a step may not set (the agent owns them). */
const RESERVED_HEADERS = new Set(['idempotency-key', 'content-length', 'host', 'transfer-encoding', 'connection']);

/** Step input: `{ url: http(s) URL, payload: any JSON, headers?: {name: value} }`. */
export const MarketingSwarmInput = z.object({
  url: z
    .string({ error: 'expected an http(s) URL string' })
    .refine(isHttpUrl, { error: 'expected an absolute http or https URL' }),
  payload: z.unknown().refine((value) => value !== undefined, { error: 'expected a JSON payload' }),
  headers: z
    .record(
      z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { error: 'expected an HTTP header name' }),
      z.string().refine((v) => !/[\r\n]/.test(v), { error: 'header values may not contain line breaks' }),
    )
    .refine((headers) => Object.keys(headers).every((name) => !RESERVED_HEADERS.has(name.toLowerCase())), {
      error: `headers may not set ${[...RESERVED_HEADERS].join(', ')}`,
    })
    .optional(),
});
export type MarketingSwarmInput = z.infer<typeof MarketingSwarmInput>;

/** Step output. */
export interface MarketingSwarmOutput {
  /** The 2xx status. */
  status: number;
  /** Parsed JSON if the response is JSON, else text; cut at 64 KiB (then always text). */
  body: unknown;
  /** Whether `body` was cut. */
  truncated: boolean;
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/**
 * The `marketing-swarm` agent: POST `payload` to `url` with `Idempotency-Key: ctx.idempotencyKey`.
 * Throws `ValidationError` (fields `url`, `payload`, `headers.*`), `RetryLaterError` (timeout,
 * network, 429, 5xx), `AgentError` (other non-2xx) or `CancelledError` (`ctx.signal`).
 */
export const marketingSwarm: NamedAgent = {
  name: 'marketing-swarm',
  type: 'api',
  description: 'POSTs a JSON payload to a marketing service (idempotent per step).',
  async run(input: unknown, ctx: AgentContext): Promise<MarketingSwarmOutput> {
    const { url, payload, headers } = parseInput(MarketingSwarmInput, input);
    const response = await httpCall({
      method: 'POST',
      url,
      headers: { Accept: 'application/json, text/plain;q=0.9, */*;q=0.1', ...headers },
      body: payload,
      timeoutMs: MARKETING_SWARM_TIMEOUT_MS,
      signal: ctx.signal,
      idempotencyKey: ctx.idempotencyKey,
      maxBodyBytes: MARKETING_SWARM_MAX_BODY_BYTES,
    });
    ctx.logger.info(
      { agent: 'marketing-swarm', status: response.status, host: new URL(url).host },
      'marketing-swarm call succeeded',
    );
    return { status: response.status, body: response.body, truncated: response.truncated };
  },
};
