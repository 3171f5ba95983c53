/** Postgres connections (postgres.js) and the drizzle handle over them. */
import postgres, { type Sql } from 'postgres';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import * as schema from './schema.js';

export type Db = PostgresJsDatabase<typeof schema>;

/** A connected database: raw postgres.js client, drizzle over it, and `close()`. */
export interface Database {
  sql: Sql;
  db: Db;
  /** Ends every connection; waits at most `timeoutSeconds` for running queries. */
  close(timeoutSeconds?: number): Promise<void>;
}

/**
 * How long opening a connection may take, in seconds. Short, so that while Postgres is down a
 * query fails in about a second (the API answers 503) instead of waiting for the default 30 s.
 */
const CONNECT_TIMEOUT_S = 2;

/**
 * How long an unused connection stays open, in seconds: a process whose load drops gives its
 * connections back, so the sum of every pool's *peak* never has to fit at once.
 */
const IDLE_TIMEOUT_S = 30;

/**
 * How long a transaction may sit idle (its connection waiting on the process, not on Postgres)
 * before Postgres ends it, in milliseconds (`idle_in_transaction_session_timeout`). Ours do only
 * short work between statements; one that idles longer is stuck — waiting on Redis, say, or on a
 * second connection of a pool its peers have exhausted while they wait on its locks, a deadlock
 * Postgres cannot see. Ending it (an infrastructure error: the job runs again) frees its locks
 * and its connection.
 */
const IDLE_IN_TRANSACTION_MS = 10_000;

/**
 * Wait before re-opening a closed connection, in seconds, by consecutive failures: 50 ms
 * doubling to at most 0.5 s, with jitter. postgres.js' default grows to 20 s, which held
 * requests 8–18 s after a Postgres restart.
 */
function reconnectBackoffS(retries: number): number {
  return Math.min(0.05 * 2 ** retries, 0.5) * (0.5 + Math.random() / 2);
}

/**
 * Connect to Postgres.
 * @param url - `postgres://user@host:port/db`.
 * @param options.max - pool size (connections).
 */
export function createDatabase(url: string, options: { max?: number; applicationName?: string } = {}): Database {
  const sql = postgres(url, {
    max: options.max ?? 8,
    idle_timeout: IDLE_TIMEOUT_S,
    onnotice: () => undefined,
    connect_timeout: CONNECT_TIMEOUT_S,
    backoff: reconnectBackoffS,
    connection: { application_name: options.applicationName ?? 'baton', idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS },
  });
  const db = drizzle(sql, { schema });
  return { sql, db, close: (timeoutSeconds = 5) => sql.end({ timeout: timeoutSeconds }) };
}
