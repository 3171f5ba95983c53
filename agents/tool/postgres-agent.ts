/**
 * `postgres-agent` (type `tool`): runs one of a fixed set of named, parameterised, read-only
 * queries. Steps never send SQL text; they name a query from {@link NAMED_QUERIES} and pass
 * parameters that are validated by that query's zod schema and bound as `$1..$n`.
 *
 * Every query runs in its own `READ ONLY` transaction with `SET LOCAL statement_timeout`, and at
 * most {@link ROW_LIMIT} rows are returned (the query is run with `LIMIT ROW_LIMIT + 1`; one row
 * more fails the step rather than silently returning a partial answer).
 */
import type postgres from 'postgres';
import { z } from 'zod';
import { AgentError, CancelledError, RetryLaterError, ValidationError } from '../../lib/index.js';
import type { AgentContext, NamedAgent } from '../types.js';
import { isCalendarDate, parseInput } from '../validation.js';

/** Most rows a named query may return. */
export const ROW_LIMIT = 10_000;
/** Server-side statement timeout of every query (a Postgres interval literal). */
export const STATEMENT_TIMEOUT = '5s';

type Parameter = postgres.SerializableParameter;
type Row = Record<string, unknown>;

/** A named query as stored in the registry. */
export interface NamedQuery {
  description: string;
  /** One SELECT with `$1..$n` placeholders and no LIMIT of its own (the agent appends one). */
  sql: string;
  /** Validates (and may normalise) the step's `params` object. */
  params: z.ZodType<Record<string, unknown>>;
  /** Which `params` key binds `$1`, `$2`, ... */
  paramOrder: readonly string[];
  /** Converts a driver row to its JSON output form. */
  mapRow: (row: Row) => Row;
}

/** Typed helper: `paramOrder` may only name keys of the schema's output. */
function defineQuery<S extends z.ZodType<Record<string, unknown>>>(query: {
  description: string;
  sql: string;
  params: S;
  paramOrder: readonly (keyof z.output<S> & string)[];
  mapRow: (row: Row) => Row;
}): NamedQuery {
  return query;
}

const isoDate = z
  .string({ error: 'expected a date string as YYYY-MM-DD' })
  .refine(isCalendarDate, { error: 'expected a date as YYYY-MM-DD' });

/** The registry: query name → definition. */
export const NAMED_QUERIES: Readonly<Record<string, NamedQuery>> = Object.freeze({
  prices_in_window: defineQuery({
    description: 'Prices of 1–20 symbols between two dates (inclusive), ordered by symbol and date.',
    sql: [
      "SELECT symbol, to_char(date, 'YYYY-MM-DD') AS date, price",
      'FROM market_prices',
      'WHERE symbol = ANY($1::text[]) AND date BETWEEN $2::date AND $3::date',
      'ORDER BY symbol, date',
    ].join(' '),
    params: z
      .object({
        symbols: z
          .array(z.string().min(1, { error: 'expected a non-empty symbol' }).max(32), {
            error: 'expected an array of symbols',
          })
          .min(1, { error: 'expected 1 to 20 symbols' })
          .max(20, { error: 'expected 1 to 20 symbols' }),
        from: isoDate,
        to: isoDate,
      })
      .refine((p) => p.from <= p.to, { error: 'expected to >= from', path: ['to'] }),
    paramOrder: ['symbols', 'from', 'to'],
    mapRow: (row) => ({ symbol: String(row.symbol), date: String(row.date), price: Number(row.price) }),
  }),
});

/** Step input: `{ query: <name in NAMED_QUERIES>, params: {...} }` (`params` defaults to `{}`). */
export const PostgresAgentInput = z.object({
  query: z.string({ error: 'expected the name of a query' }).min(1),
  params: z.record(z.string(), z.unknown(), { error: 'expected an object of query parameters' }).default({}),
});

/** Step output. */
export interface PostgresAgentOutput {
  rows: Row[];
  rowCount: number;
}

/**
 * Validate a step input against the registry and build the statement.
 *
 * @returns the query name, SQL text (with the row-limit clause) and positional parameters.
 * @throws {ValidationError} field `query` for an unknown name (message lists the known names),
 *   or `params.<key>` for invalid parameters.
 */
export function prepareQuery(input: unknown): { name: string; query: NamedQuery; text: string; values: Parameter[] } {
  const { query: name, params } = parseInput(PostgresAgentInput, input);
  const query = Object.hasOwn(NAMED_QUERIES, name) ? NAMED_QUERIES[name] : undefined;
  if (!query) {
    const known = Object.keys(NAMED_QUERIES).sort().join(', ');
    throw new ValidationError(`query: unknown query "${name}"; known queries: ${known}`, { field: 'query' });
  }
  const parsed = parseInput(query.params, params, { prefix: 'params' });
  const values = query.paramOrder.map((key) => toParameter(parsed[key], `params.${key}`));
  return { name, query, text: `${query.sql} LIMIT ${ROW_LIMIT + 1}`, values };
}

/** A validated value as a driver parameter (strings, numbers, booleans, null, flat arrays). */
function toParameter(value: unknown, field: string): Parameter {
  if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) return value as Parameter;
  if (Array.isArray(value) && value.every((v) => ['string', 'number', 'boolean'].includes(typeof v))) {
    return value as Parameter;
  }
  throw new ValidationError(`${field}: unsupported parameter type`, { field });
}

/**
 * The `postgres-agent`. Throws `ValidationError` (see {@link prepareQuery}) before touching the
 * database; `AgentError` when the query fails or returns more than {@link ROW_LIMIT} rows;
 * `RetryLaterError` for connection problems, serialisation failures and server overload;
 * `CancelledError` when `ctx.signal` aborts (the running statement is cancelled server-side).
 */
export const postgresAgent: NamedAgent = {
  name: 'postgres-agent',
  type: 'tool',
  description: `Runs a named, parameterised read-only query (${Object.keys(NAMED_QUERIES).join(', ')}).`,
  async run(input: unknown, ctx: AgentContext): Promise<PostgresAgentOutput> {
    const { name, query, text, values } = prepareQuery(input);
    if (ctx.signal.aborted) throw new CancelledError(`query ${name} was cancelled`);
    const started = Date.now();
    let raw: readonly Row[];
    try {
      raw = await ctx.sql.begin('read only', async (tx) => {
        await tx.unsafe(`SET LOCAL statement_timeout = '${STATEMENT_TIMEOUT}'`);
        const pending = tx.unsafe<Row[]>(text, values);
        const cancel = (): void => {
          void pending.cancel();
        };
        ctx.signal.addEventListener('abort', cancel, { once: true });
        try {
          return [...(await pending)];
        } finally {
          ctx.signal.removeEventListener('abort', cancel);
        }
      });
    } catch (err) {
      throw databaseError(name, err, ctx.signal);
    }
    if (raw.length > ROW_LIMIT) {
      throw new AgentError(`query ${name} returned more than ${ROW_LIMIT} rows; narrow its parameters`);
    }
    const rows = raw.map(query.mapRow);
    ctx.logger.info({ agent: 'postgres-agent', query: name, rowCount: rows.length, durationMs: Date.now() - started }, 'query done');
    return { rows, rowCount: rows.length };
  },
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

function databaseError(name: string, err: unknown, signal: AbortSignal): Error {
  if (signal.aborted) return new CancelledError(`query ${name} was cancelled`, { cause: err });
  const code = typeof (err as { code?: unknown } | null)?.code === 'string' ? (err as { code: string }).code : '';
  const message = err instanceof Error ? err.message : String(err);
  if (code === '57014') {
    return new AgentError(`query ${name} exceeded the statement timeout of ${STATEMENT_TIMEOUT}`, { cause: err });
  }
  if (RETRYABLE_CLIENT_CODES.has(code) || RETRYABLE_SQLSTATE.test(code)) {
    return new RetryLaterError(`query ${name} failed transiently: ${message} (${code})`, { cause: err });
  }
  return new AgentError(`query ${name} failed: ${message}${code ? ` (${code})` : ''}`, { cause: err });
}
