/**
 * Console sign-in (issue 9 item 5): the API key is kept in an HttpOnly, SameSite=Strict cookie,
 * and every state-changing request that authenticates with that cookie must carry the session's
 * CSRF token in `x-csrf-token` — HMAC-SHA256 over the key's hash (a "signed double submit"
 * token, OWASP CSRF Prevention Cheat Sheet), which the page reads from `GET /console/session`
 * because it cannot read the cookie. A request with `Authorization` never uses the cookie.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Request, Response } from 'express';
import { ForbiddenError } from '../../lib/index.js';

/** Name of the session cookie. */
export const SESSION_COOKIE = 'baton_console';
/** Header carrying the CSRF token. */
export const CSRF_HEADER = 'x-csrf-token';
/** Session cookie lifetime, in seconds. */
const SESSION_MAX_AGE_S = 12 * 3600;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The value of cookie `name` in a `Cookie` header (RFC 6265 §5.4 pairs), URL-decoded. */
function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

export class ConsoleSessions {
  private readonly key: Buffer;

  /** @param webhookSecret - `BATON_WEBHOOK_SECRET`; the CSRF key is derived from it. */
  constructor(webhookSecret: string) {
    const raw = Buffer.from(webhookSecret.replace(/^whsec_/, ''), 'base64');
    this.key = createHmac('sha256', raw).update('baton console csrf v1').digest();
  }

  /** The CSRF token of the session holding `apiKey`. */
  csrfFor(apiKey: string): string {
    return createHmac('sha256', this.key).update(createHash('sha256').update(apiKey).digest()).digest('base64url');
  }

  /** The session's API key, if the request carries the cookie. */
  keyOf(req: Request): string | undefined {
    const key = cookieValue(req.get('cookie'), SESSION_COOKIE);
    return key ? key : undefined;
  }

  /**
   * The API key of a cookie-authenticated request, checking the CSRF token of unsafe methods.
   * @throws {ForbiddenError} an unsafe request with the cookie but without its CSRF token.
   */
  credential(req: Request): string | undefined {
    const key = this.keyOf(req);
    if (!key) return undefined;
    if (!SAFE_METHODS.has(req.method)) {
      const sent = Buffer.from(req.get(CSRF_HEADER) ?? '');
      const expected = Buffer.from(this.csrfFor(key));
      if (sent.length !== expected.length || !timingSafeEqual(sent, expected)) {
        throw new ForbiddenError(`missing or wrong ${CSRF_HEADER} header (console session)`, { field: CSRF_HEADER });
      }
    }
    return key;
  }

  /** Set the session cookie (`Secure` when the request came over HTTPS). */
  open(req: Request, res: Response, apiKey: string): void {
    res.cookie(SESSION_COOKIE, apiKey, { httpOnly: true, sameSite: 'strict', secure: req.secure, path: '/', maxAge: SESSION_MAX_AGE_S * 1000 });
  }

  /** Clear the session cookie. */
  close(req: Request, res: Response): void {
    res.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'strict', secure: req.secure, path: '/' });
  }
}
