/**
 * Agent input validation: one zod parse whose failure becomes a {@link ValidationError} naming
 * the offending field (e.g. `kpis.AAPL.firstPrice: expected number, received string`).
 */
import type { z } from 'zod';
import { ValidationError } from '../lib/index.js';

/** At most this many issues are listed in one error message (the first one sets `field`). */
const MAX_LISTED_ISSUES = 3;

/**
 * Dotted path of a zod issue (`['kpis', 'AAPL', 'firstPrice']` → `kpis.AAPL.firstPrice`).
 * @param path - the issue's path; empty means the value itself.
 * @param root - name used for an empty path (default `input`).
 */
export function fieldPath(path: readonly PropertyKey[], root = 'input'): string {
  if (path.length === 0) return root;
  return path.map((key) => (typeof key === 'symbol' ? (key.description ?? 'symbol') : String(key))).join('.');
}

/**
 * Parse `value` with `schema`.
 *
 * @param schema - zod schema of the expected shape.
 * @param value - untrusted input.
 * @param options.prefix - prepended to every field path (e.g. `params` → `params.from`).
 * @param options.root - field name when the value itself is wrong (default `input`).
 * @returns the parsed (and possibly transformed) value.
 * @throws {ValidationError} with `field` = the first issue's dotted path and a message listing
 *   up to three issues as `<path>: <reason>`.
 */
export function parseInput<S extends z.ZodType>(
  schema: S,
  value: unknown,
  options: { prefix?: string; root?: string } = {},
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues;
  const describe = (issue: (typeof issues)[number]): { field: string; text: string } => {
    const local = fieldPath(issue.path, options.root);
    const field = options.prefix ? (issue.path.length === 0 ? options.prefix : `${options.prefix}.${local}`) : local;
    return { field, text: `${field}: ${issue.message.replace(/^Invalid input: /, '')}` };
  };
  const described = issues.slice(0, MAX_LISTED_ISSUES).map(describe);
  const first = described[0] ?? { field: options.prefix ?? options.root ?? 'input', text: 'invalid input' };
  const more = issues.length > MAX_LISTED_ISSUES ? ` (and ${issues.length - MAX_LISTED_ISSUES} more)` : '';
  throw new ValidationError(described.map((d) => d.text).join('; ') + more, { field: first.field });
}

/** `YYYY-MM-DD` that is a real calendar date (e.g. not `2021-02-30`). */
export function isCalendarDate(text: string): boolean {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!match) return false;
  const [, y, m, d] = match;
  const date = new Date(Date.UTC(Number(y), Number(m) - 1, Number(d)));
  return date.toISOString().slice(0, 10) === text;
}
