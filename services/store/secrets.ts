/**
 * Organization secrets: sealed with AES-256-GCM under `BATON_SECRETS_KEY` (`lib/secret-box.ts`),
 * bound to `<organizationId>/<name>` as AAD, so a sealed value copied to another row or another
 * organization does not open. Values are never returned by listing; only {@link loadSecrets}
 * decrypts, and only the names asked for. Every value that passes through here is registered with
 * the logger, so no log line of this process can carry it.
 */
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import { ConfigError, NotFoundError, ValidationError, openSecret, registerSensitiveValues, sealSecret } from '../../lib/index.js';
import { secrets, type Db } from '../../db/index.js';

/** Secret names: an upper-case letter, then upper-case letters, digits or `_` (like env variables). */
export const SECRET_NAME_PATTERN = /^[A-Z][A-Z0-9_]*$/;
/** Longest secret name, in characters. */
export const SECRET_NAME_MAX_CHARS = 128;
/** Largest secret value, in bytes of UTF-8 (64 KiB). */
export const SECRET_VALUE_MAX_BYTES = 64 * 1024;

/** A secret as listed: never its value. */
export interface SecretSummary {
  name: string;
  createdAt: Date;
  updatedAt: Date;
}

/** The AAD a secret is sealed with. */
function aadOf(organizationId: string, name: string): string {
  return `${organizationId}/${name}`;
}

/**
 * Check a secret name.
 * @throws {ValidationError} field `name`.
 */
export function checkSecretName(name: string): void {
  if (!SECRET_NAME_PATTERN.test(name) || name.length > SECRET_NAME_MAX_CHARS) {
    throw new ValidationError(
      `name: expected an upper-case letter followed by upper-case letters, digits or "_" (at most ${SECRET_NAME_MAX_CHARS} characters), such as OPENAI_API_KEY`,
      { field: 'name' },
    );
  }
}

/**
 * Check a secret value: 1 to {@link SECRET_VALUE_MAX_BYTES} bytes of UTF-8, no NUL character.
 * @throws {ValidationError} field `value` (the message never quotes the value).
 */
export function checkSecretValue(value: string): void {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes === 0 || bytes > SECRET_VALUE_MAX_BYTES) {
    throw new ValidationError(`value: expected 1 to ${SECRET_VALUE_MAX_BYTES} bytes, got ${bytes}`, { field: 'value' });
  }
  if (value.includes('\u0000')) throw new ValidationError('value: must not contain NUL characters', { field: 'value' });
}

/**
 * Create or replace a secret.
 *
 * @param key - the 32-byte secrets key (`config.secrets.key`).
 * @returns name and timestamps (`createdAt` kept on replace, `updatedAt` now).
 * @throws {ValidationError} field `name` or `value`.
 */
export async function putSecret(db: Db, key: Buffer, organizationId: string, name: string, value: string): Promise<SecretSummary> {
  checkSecretName(name);
  checkSecretValue(value);
  registerSensitiveValues([value]);
  const sealed = sealSecret(key, value, aadOf(organizationId, name));
  const [row] = await db
    .insert(secrets)
    .values({ organizationId, name, sealed })
    .onConflictDoUpdate({ target: [secrets.organizationId, secrets.name], set: { sealed, updatedAt: sql`now()` } })
    .returning({ name: secrets.name, createdAt: secrets.createdAt, updatedAt: secrets.updatedAt });
  if (!row) throw new Error(`secret ${name} was not stored`);
  return row;
}

/** The organization's secrets by name (values never included). */
export async function listSecrets(db: Db, organizationId: string): Promise<SecretSummary[]> {
  return db
    .select({ name: secrets.name, createdAt: secrets.createdAt, updatedAt: secrets.updatedAt })
    .from(secrets)
    .where(eq(secrets.organizationId, organizationId))
    .orderBy(asc(secrets.name));
}

/**
 * Delete a secret.
 * @throws {NotFoundError} when the organization has no secret of that name.
 */
export async function deleteSecret(db: Db, organizationId: string, name: string): Promise<void> {
  const deleted = await db
    .delete(secrets)
    .where(and(eq(secrets.organizationId, organizationId), eq(secrets.name, name)))
    .returning({ name: secrets.name });
  if (deleted.length === 0) throw new NotFoundError(`secret ${name} not found`);
}

/**
 * Decrypt the named secrets (only those), and register their values with the logger.
 *
 * @param db - the pool, or the caller's transaction when it holds one (a second connection taken
 *   while a transaction holds one can deadlock a small pool).
 * @param names - secret names wanted (e.g. an agent's `secrets:`).
 * @returns every requested name, `undefined` where the organization has none.
 * @throws {ConfigError} when a stored value does not open (the key changed or the row was altered).
 */
export async function loadSecrets(
  db: Pick<Db, 'select'>,
  key: Buffer,
  organizationId: string,
  names: readonly string[],
): Promise<Record<string, string | undefined>> {
  const result: Record<string, string | undefined> = Object.fromEntries(names.map((n) => [n, undefined]));
  if (names.length === 0) return result;
  const rows = await db
    .select({ name: secrets.name, sealed: secrets.sealed })
    .from(secrets)
    .where(and(eq(secrets.organizationId, organizationId), inArray(secrets.name, [...new Set(names)])));
  for (const row of rows) {
    try {
      result[row.name] = openSecret(key, row.sealed, aadOf(organizationId, row.name));
    } catch (err) {
      throw new ConfigError(`secret ${row.name} does not open under BATON_SECRETS_KEY (key changed, or the row was altered)`, {
        cause: err,
      });
    }
  }
  registerSensitiveValues(rows.map((r) => result[r.name] ?? ''));
  return result;
}
