/** Database creation and migrations (drizzle-kit SQL in `db/migrations`). */
import { join } from 'node:path';
import postgres from 'postgres';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import { projectRoot } from '../lib/index.js';

/**
 * Create the database named in `url` if it does not exist (connecting to the server's
 * `postgres` database to do so).
 * @returns `true` when the database was created.
 */
export async function ensureDatabase(url: string): Promise<boolean> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`DATABASE_URL: unsupported database name "${name}"`);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => undefined });
  try {
    const found = await sql`select 1 from pg_database where datname = ${name}`;
    if (found.length > 0) return false;
    try {
      await sql.unsafe(`create database "${name}"`);
    } catch (err) {
      // Another process created it between our check and our CREATE: that is fine.
      if ((err as { code?: string }).code !== '42P04') throw err;
      return false;
    }
    return true;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Apply every pending migration in `db/migrations` (idempotent; serialised by drizzle's lock table). */
export async function runMigrations(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    await migrate(drizzle(sql), { migrationsFolder: join(projectRoot(), 'db', 'migrations') });
  } finally {
    await sql.end({ timeout: 5 });
  }
}
