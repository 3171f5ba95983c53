/**
 * Decision tokens carried in `decideUrl` (`?token=`): compact JWS (HS256, RFC 7515/7519 via
 * `jose`) bound to (approval, approver, generation), expiring at the approval's deadline and
 * single-use through `approval_tokens.used_at`.
 *
 * Minting is deterministic: the same claims and key give the same token. Only the token id
 * (`jti`) and its claims are stored, never the token; the webhook worker re-mints the exact
 * token when it delivers the notification. So no event, log or table holds a usable token.
 */
import { createHmac } from 'node:crypto';
import { SignJWT, errors, jwtVerify } from 'jose';
import { GoneError, UnauthorizedError } from '../../lib/index.js';

const ISSUER = 'baton';
const AUDIENCE = 'baton:approval-decision';

/** Claims of a decision token. */
export interface DecisionTokenClaims {
  approvalId: string;
  /** Who the link was issued to, e.g. `role:analyst`, `user:alice`, `anyone`. */
  approver: string;
  generation: number;
  jti: string;
  /** Issued-at and expiry, in Unix seconds. */
  issuedAtS: number;
  expiresAtS: number;
}

/**
 * The HMAC key for tokens, derived from `BATON_WEBHOOK_SECRET` so that one secret configures a
 * deployment: HMAC-SHA256(secret bytes, "baton approval tokens v1").
 */
export function tokenKey(webhookSecret: string): Uint8Array {
  const raw = Buffer.from(webhookSecret.replace(/^whsec_/, ''), 'base64');
  return new Uint8Array(createHmac('sha256', raw).update('baton approval tokens v1').digest());
}

/** Mint the token for `claims` (deterministic). */
export async function mintDecisionToken(key: Uint8Array, claims: DecisionTokenClaims): Promise<string> {
  return new SignJWT({ apr: claims.approvalId, gen: claims.generation })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(claims.approver)
    .setJti(claims.jti)
    .setIssuedAt(claims.issuedAtS)
    .setExpirationTime(claims.expiresAtS)
    .sign(key);
}

/**
 * Verify a token's signature and claims.
 * @throws {UnauthorizedError} malformed, forged or wrongly signed.
 * @throws {GoneError} genuine but past its expiry (the approval's deadline).
 */
export async function verifyDecisionToken(key: Uint8Array, token: string): Promise<DecisionTokenClaims> {
  try {
    const { payload } = await jwtVerify(token, key, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'] });
    const { apr, gen, sub, jti, iat, exp } = payload;
    if (typeof apr !== 'string' || typeof gen !== 'number' || !sub || !jti || !iat || !exp) {
      throw new UnauthorizedError('decision token is missing claims');
    }
    return { approvalId: apr, generation: gen, approver: sub, jti, issuedAtS: iat, expiresAtS: exp };
  } catch (err) {
    if (err instanceof errors.JWTExpired) throw new GoneError('the decision deadline has passed');
    if (err instanceof UnauthorizedError) throw err;
    throw new UnauthorizedError('invalid decision token');
  }
}
