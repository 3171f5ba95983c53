/**
 * `sql` (type `tool`): runs one of the statements declared in the entry's config. SQL text never
 * comes from a run: a step names a statement and passes parameters.
 *
 * Config: `statements: {<name>: {sql, params, mode, description?, paramOrder?}}`, optional
 * `rowLimit` (default {@link DEFAULT_ROW_LIMIT}) and `statementTimeoutMs` (default
 * {@link DEFAULT_STATEMENT_TIMEOUT_MS}).
 * - `params` is the JSON Schema of the step's `params` object (validated with ajv; defaults to
 *   `{type: object}`).
 * - Binding: the SQL uses positional placeholders `$1..$n`; `$i` binds `params[paramOrder[i-1]]`.
 *   `paramOrder` defaults to the keys of `params.properties` in declared order. Every
 *   placeholder must have a name in `paramOrder`, and every name must be a declared property. An
 *   absent (optional) parameter binds SQL `NULL`. Values bind as text, number, boolean, `NULL` or
 *   a flat array (cast in SQL, e.g. `$1::text[]`, `$2::date`).
 * - `mode: read` (default) runs in a `READ ONLY` transaction, so a statement that writes fails
 *   (SQLSTATE 25006); `mode: write` runs in a read-write transaction.
 * - Every statement runs with `SET LOCAL statement_timeout`; at most `rowLimit` rows are returned:
 *   the rows are read through a cursor in one batch of `rowLimit + 1`, and one row more fails the
 *   step instead of returning a partial answer.
 * - One statement per entry (the extended query protocol refuses several).
 *
 * Step input `{statement, params?}` (`query` is accepted as an alias of `statement`, the
 * postgres-agent shape) → `{rows, rowCount}`. Column values come as the driver returns them
 * (`text`, `float8`, `int4`, `bool`, `json` as JSON; `numeric`, `int8` as strings; dates as
 * timestamps): cast in SQL (`to_char(date, 'YYYY-MM-DD')`) for a stable output.
 */
import { z } from 'zod';
import type postgres from 'postgres';
import { AgentError, CancelledError, RetryLaterError, ValidationError } from '../../lib/index.js';
import { assertMatchesSchema, compileSchema } from '../json-schema.js';
import type { AgentContext, AgentImplementation } from '../types.js';
import { parseInput } from '../validation.js';

/** Default most rows a statement may return. */
export const DEFAULT_ROW_LIMIT = 10_000;
/** Default server-side statement timeout, in milliseconds. */
export const DEFAULT_STATEMENT_TIMEOUT_MS = 5_000;

type Parameter = postgres.SerializableParameter;
type Row = Record<string, unknown>;

const STATEMENT_NAME = /^[a-z][a-z0-9_]*$/;

/** Highest `$n` placeholder of a SQL text (0 for none). Ignores quoted strings and comments. */
export function highestPlaceholder(sql: string): number {
  const code = sql
    .replace(/'(?:[^']|'')*'/g, "''")
    .replace(/"(?:[^"]|"")*"/g, '""')
    .replace(/--[^\n]*/g, '')
    .replace(/\/\*[\s\S]*?\*\//g, '');
  let max = 0;
  for (const match of code.matchAll(/\$(\d+)/g)) max = Math.max(max, Number(match[1]));
  return max;
}

const Statement = z
  .object({
    sql: z.string().min(1).max(100_000),
    /** JSON Schema of the step's `params` object. */
    params: z.record(z.string(), z.unknown()).default({ type: 'object' }),
    mode: z.enum(['read', 'write']).default('read'),
    description: z.string().max(2000).optional(),
    paramOrder: z.array(z.string().min(1)).max(100).optional(),
  })
  .strict()
  .superRefine((statement, issue) => {
    try {
      compileSchema(statement.params, 'params');
    } catch (err) {
      issue.addIssue({ code: 'custom', path: ['params'], message: err instanceof Error ? err.message : String(err) });
      return;
    }
    const properties = Object.keys((statement.params.properties ?? {}));
    const order = statement.paramOrder ?? properties;
    order.forEach((name, index) => {
      if (!properties.includes(name)) {
        issue.addIssue({ code: 'custom', path: ['paramOrder', index], message: `"${name}" is not a property of params` });
      }
    });
    const highest = highestPlaceholder(statement.sql);
    if (highest > order.length) {
      issue.addIssue({
        code: 'custom',
        path: ['sql'],
        message: `uses $${highest} but only ${order.length} parameter${order.length === 1 ? ' is' : 's are'} named (paramOrder: ${order.join(', ') || 'none'})`,
      });
    }
  });

/** The entry's `config:`. */
export const SqlConfig = z
  .object({
    statements: z
      .record(z.string().regex(STATEMENT_NAME, { error: 'statement names are lower-case identifiers' }), Statement)
      .refine((s) => Object.keys(s).length > 0, { error: 'declare at least one statement' }),
    rowLimit: z.number().int().positive().max(100_000).default(DEFAULT_ROW_LIMIT),
    statementTimeoutMs: z.number().int().positive().max(300_000).default(DEFAULT_STATEMENT_TIMEOUT_MS),
  })
  .strict();
export type SqlConfig = z.infer<typeof SqlConfig>;
export type SqlStatement = SqlConfig['statements'][string];

/** Step input. */
export const SqlInput = z
  .object({
    statement: z.string().min(1).optional(),
    query: z.string().min(1).optional(),
    params: z.record(z.string(), z.unknown(), { error: 'expected an object of parameters' }).default({}),
  })
  .strict()
  .refine((input) => (input.statement === undefined) !== (input.query === undefined), {
    error: 'expected the name of a statement (statement)',
    path: ['statement'],
  });

/** Step output. */
export interface SqlOutput {
  rows: Row[];
  /** Rows returned (read), or rows affected (write without `RETURNING`). */
  rowCount: number;
}

/**
 * Validate a step input against the config and build the statement's parameters.
 * @returns the statement's name, declaration and positional values.
 * @throws {ValidationError} field `statement` for an unknown name (message lists the known
 *   ones), `params.<key>` for invalid parameters.
 */
export function prepareStatement(input: unknown, config: SqlConfig): { name: string; statement: SqlStatement; values: Parameter[] } {
  const parsed = parseInput(SqlInput, input);
  const name = parsed.statement ?? parsed.query ?? '';
  const statement = Object.hasOwn(config.statements, name) ? config.statements[name] : undefined;
  if (!statement) {
    const known = Object.keys(config.statements).sort().join(', ');
    throw new ValidationError(`statement: unknown statement "${name}"; known statements: ${known}`, { field: 'statement' });
  }
  assertMatchesSchema(statement.params, parsed.params, 'params');
  const order = statement.paramOrder ?? Object.keys((statement.params.properties ?? {}));
  const values = order.map((key) => toParameter(parsed.params[key], `params.${key}`));
  return { name, statement, values };
}

/** A validated value as a driver parameter. */
function toParameter(value: unknown, field: string): Parameter {
  if (value === undefined || value === null) return null;
  const scalar = (v: unknown): boolean => ['string', 'number', 'boolean'].includes(typeof v);
  if (scalar(value) || (Array.isArray(value) && value.every(scalar))) return value as Parameter;
  throw new ValidationError(`${field}: unsupported parameter type (expected a string, number, boolean, null or a flat list)`, { field });
}

/**
 * Run one statement.
 * @throws {ValidationError} (see {@link prepareStatement}) before touching the database;
 *   {@link AgentError} when the statement fails (a write in a `read` statement: SQLSTATE 25006),
 *   exceeds the statement timeout, or returns more than `rowLimit` rows; {@link RetryLaterError}
 *   for connection problems, serialisation failures and overload; {@link CancelledError} when
 *   `ctx.signal` aborts (the running statement is cancelled server-side).
 */
async function runSql(input: unknown, ctx: AgentContext, config: SqlConfig): Promise<SqlOutput> {
  const { name, statement, values } = prepareStatement(input, config);
  if (ctx.signal.aborted) throw new CancelledError(`statement ${name} was cancelled`);
  const limit = config.rowLimit;
  const started = Date.now();
  let result: { rows: Row[]; count: number; tooMany: boolean };
  try {
    const body = async (tx: postgres.TransactionSql): Promise<{ rows: Row[]; count: number; tooMany: boolean }> => {
      await tx.unsafe(`SET LOCAL statement_timeout = ${config.statementTimeoutMs}`);
      const pending = tx.unsafe<Row[]>(statement.sql, values);
      const cancel = (): void => {
        void pending.cancel();
      };
      ctx.signal.addEventListener('abort', cancel, { once: true });
      try {
        if (statement.mode === 'write') {
          const all = await pending;
          return { rows: all.slice(0, limit), count: all.count, tooMany: all.length > limit };
        }
        const rows: Row[] = [];
        for await (const batch of pending.cursor(limit + 1)) {
          rows.push(...batch);
          break;
        }
        return { rows: rows.slice(0, limit), count: Math.min(rows.length, limit), tooMany: rows.length > limit };
      } finally {
        ctx.signal.removeEventListener('abort', cancel);
      }
    };
    result = statement.mode === 'read' ? await ctx.sql.begin('read only', body) : await ctx.sql.begin(body);
  } catch (err) {
    throw databaseError(name, err, ctx.signal, config.statementTimeoutMs);
  }
  if (result.tooMany) throw new AgentError(`statement ${name} returned more than ${limit} rows; narrow its parameters`);
  const rows = result.rows.map((row) => ({ ...row }));
  ctx.logger.info({ agent: 'sql', statement: name, mode: statement.mode, rowCount: result.count, durationMs: Date.now() - started }, 'statement done');
  return { rows, rowCount: result.count };
}

/** The `sql` implementation. */
export const sqlImplementation: AgentImplementation<SqlConfig> = {
  name: 'sql',
  type: 'tool',
  description: 'Runs a named, parameterised statement declared in config (read-only unless declared write), with a timeout and a row limit.',
  config: SqlConfig,
  run: runSql,
};

/** SQLSTATE classes/codes worth retrying: connection, serialisation, resources, shutdown. */
const RETRYABLE_SQLSTATE = /^(08|53|40001|40P01|57P0[123]|55P03)/;
/** postgres.js / Node error codes of a lost or unreachable connection. */
const RETRYABLE_CLIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
]);

/** Map a driver error to the taxonomy (see {@link sqlImplementation}). */
function databaseError(name: string, err: unknown, signal: AbortSignal, timeoutMs: number): Error {
  if (signal.aborted) return new CancelledError(`statement ${name} was cancelled`, { cause: err });
  const code = typeof (err as { code?: unknown } | null)?.code === 'string' ? (err as { code: string }).code : '';
  const message = err instanceof Error ? err.message : String(err);
  if (code === '57014') return new AgentError(`statement ${name} exceeded the statement timeout of ${timeoutMs} ms`, { cause: err });
  if (code === '25006') {
    return new AgentError(`statement ${name} tried to write but is declared mode: read (${message})`, { cause: err, details: { code } });
  }
  if (RETRYABLE_CLIENT_CODES.has(code) || RETRYABLE_SQLSTATE.test(code)) {
    return new RetryLaterError(`statement ${name} failed transiently: ${message} (${code})`, { cause: err });
  }
  return new AgentError(`statement ${name} failed: ${message}${code ? ` (${code})` : ''}`, { cause: err, details: { code } });
}
