/**
 * Authenticated encryption of small secrets at rest: AES-256-GCM (NIST SP 800-38D) via
 * `node:crypto`, with a fresh random 96-bit IV per seal and a caller-chosen AAD that binds the
 * ciphertext to its context (e.g. `<organizationId>/<secretName>`), so a sealed value copied to
 * another row does not open.
 *
 * Format: `v1.<iv>.<tag>.<ciphertext>`, each part base64url (RFC 4648 §5) without padding.
 *
 * Failures are {@link ConfigError}s (HTTP 500, never retried): a value that does not open means
 * the key changed (`BATON_SECRETS_KEY`) or the stored row was altered; no caller input can cause it.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ConfigError } from './errors.js';

/** Version prefix of the sealed format. */
const VERSION = 'v1';
/** IV length in bytes (the 96 bits GCM is specified for, SP 800-38D §5.2.1.1). */
const IV_BYTES = 12;
/** Authentication tag length in bytes (128 bits). */
const TAG_BYTES = 16;
/** AES-256 key length in bytes. */
const KEY_BYTES = 32;

function checkKey(key: Buffer): void {
  if (key.length !== KEY_BYTES) throw new ConfigError(`secret-box key must be ${KEY_BYTES} bytes, got ${key.length}`);
}

/**
 * Encrypt `plaintext` under `key`, bound to `aad`.
 *
 * @param key - 32-byte AES-256 key (`config.secrets.key`).
 * @param plaintext - UTF-8 text to seal.
 * @param aad - additional authenticated data (not secret, not stored; needed again to open).
 * @returns `v1.<iv>.<tag>.<ciphertext>` (base64url parts).
 * @throws {ConfigError} when the key is not 32 bytes.
 */
export function sealSecret(key: Buffer, plaintext: string, aad: string): string {
  checkKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [VERSION, iv.toString('base64url'), tag.toString('base64url'), ciphertext.toString('base64url')].join('.');
}

/**
 * Decrypt a value made by {@link sealSecret}.
 *
 * @param key - the 32-byte key it was sealed with.
 * @param sealed - `v1.<iv>.<tag>.<ciphertext>`.
 * @param aad - the AAD it was sealed with.
 * @returns the plaintext.
 * @throws {ConfigError} when the format is not `v1`, the key is not 32 bytes, or
 *   authentication fails (tampered data, wrong key or wrong AAD; GCM cannot tell which).
 */
export function openSecret(key: Buffer, sealed: string, aad: string): string {
  checkKey(key);
  const parts = sealed.split('.');
  const b64url = /^[A-Za-z0-9_-]*$/;
  if (parts.length !== 4 || parts[0] !== VERSION || !parts.slice(1).every((p) => b64url.test(p))) {
    throw new ConfigError('sealed secret is malformed: expected v1.<iv>.<tag>.<ciphertext>');
  }
  const iv = Buffer.from(parts[1] ?? '', 'base64url');
  const tag = Buffer.from(parts[2] ?? '', 'base64url');
  const ciphertext = Buffer.from(parts[3] ?? '', 'base64url');
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
    throw new ConfigError(`sealed secret is malformed: expected a ${IV_BYTES}-byte IV and a ${TAG_BYTES}-byte tag`);
  }
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
  } catch (err) {
    throw new ConfigError('sealed secret does not open: tampered with, or wrong key or AAD', { cause: err });
  }
}
