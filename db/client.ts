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
 * Connect to Postgres.
 * @param url - `postgres://user@host:port/db`.
 * @param options.max - pool size (connections).
 */
export function createDatabase(url: string, options: { max?: number; applicationName?: string } = {}): Database {
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => undefined,
    connection: { application_name: options.applicationName ?? 'baton' },
  });
  const db = drizzle(sql, { schema });
  return { sql, db, close: (timeoutSeconds = 5) => sql.end({ timeout: timeoutSeconds }) };
}
