/** Request validation with zod, reported as `ValidationError` naming the first bad field. */
import type { Request } from 'express';
import { z } from 'zod';
import { ValidationError } from '../../lib/index.js';

/**
 * Parse a request body.
 * @throws {ValidationError} with `field` = the dotted path of the first issue (e.g. `input`, `version`).
 */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const parsed = schema.safeParse(body ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const keys = issue?.code === 'unrecognized_keys' ? issue.keys : [];
  const field = [...(issue?.path ?? []), ...keys.slice(0, 1)].map(String).join('.') || 'body';
  const message = issue?.code === 'unrecognized_keys' ? `unknown field "${keys.join('", "')}"` : (issue?.message ?? 'invalid body');
  throw new ValidationError(`${field}: ${message}`, { field });
}

/**
 * One optional query string parameter.
 * @throws {ValidationError} naming `field` when it is repeated (`?status=a&status=b`) or nested.
 */
export function queryString(req: Request, field: string): string | undefined {
  const value = req.query[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new ValidationError(`${field} must be given once`, { field });
  return value;
}

/**
 * Parse a query string (`req.query`) with a zod object schema, strictly: a parameter the schema
 * does not name is refused, and a repeated parameter (an array) is refused by the schema like any
 * other wrong type. (The request guard, `input-guard.ts`, refuses unknown parameters on every
 * documented route before it runs.)
 * @throws {ValidationError} with `field` = the first bad or unknown parameter.
 */
export function parseQuery<S extends z.ZodObject>(schema: S, query: unknown): z.infer<S> {
  const known = Object.keys(schema.shape);
  const unknown = Object.keys((query ?? {}) as Record<string, unknown>).find((name) => !known.includes(name));
  if (unknown !== undefined) throw new ValidationError(`${unknown}: unknown query parameter "${unknown}"`, { field: unknown });
  return parseBody(schema, query);
}

/** The largest Postgres `integer` (int32); integer inputs above it are refused by name. */
export const INT32_MAX = 2_147_483_647;

/**
 * The `limit` query parameter of a listing: an integer from 1 to `max`, `fallback` when absent.
 * @param max - the largest page, in items.
 */
export function limitParam(max: number, fallback: number): z.ZodDefault<z.ZodCoercedNumber> {
  const error = `expected an integer from 1 to ${max}`;
  return z.coerce.number({ error }).int({ error }).min(1, { error }).max(max, { error }).default(fallback);
}

/** The `cursor` query parameter of a paged listing: the previous page's `nextCursor`. */
export const CursorParam = z.string({ error: 'must be given once' }).optional().meta({ description: '`nextCursor` of the previous page' });
