/**
 * The HTTP half of the error taxonomy: every error becomes `{error: {code, message, field?}}`
 * with the status the `AppError` carries; an infrastructure error (Postgres or Redis down,
 * `lib/infrastructure.ts`) is a 503 `UNAVAILABLE` with `Retry-After`; anything else is a logged
 * 500 with a generic body.
 */
import type { NextFunction, Request, Response } from 'express';
import { AppError, RateLimitedError, classifyInfrastructure, type Logger } from '../../lib/index.js';

/** `Retry-After` of a 503, in seconds. */
const RETRY_AFTER_S = '2';

/** Express error-handling middleware (must keep four parameters). */
export function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, next: NextFunction): void => {
    if (res.headersSent) return next(err);
    if (err instanceof AppError) {
      if (err.httpStatus >= 500) logger[err.code === 'UNAVAILABLE' ? 'warn' : 'error']({ err, path: req.path }, 'request failed');
      if (err.code === 'RETRY_LATER' || err.code === 'UNAVAILABLE') res.set('retry-after', RETRY_AFTER_S);
      if (err instanceof RateLimitedError) res.set('retry-after', String(err.retryAfterS));
      res.status(err.httpStatus).json({
        error: {
          code: err.code,
          message: err.message,
          ...(err.field ? { field: err.field } : {}),
          ...(err.details ? { details: err.details } : {}),
        },
      });
      return;
    }
    // body-parser errors (malformed JSON, body too large) carry a 4xx `status`.
    const status = (err as { status?: number }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      res.status(status).json({ error: { code: 'VALIDATION_FAILED', message: `invalid request body: ${(err as Error).message}`, field: 'body' } });
      return;
    }
    const infrastructure = classifyInfrastructure(err);
    if (infrastructure) {
      logger.warn({ err, path: req.path, infrastructure }, 'dependency unavailable');
      res.set('retry-after', RETRY_AFTER_S);
      res.status(503).json({ error: { code: 'UNAVAILABLE', message: `${infrastructure.kind} is unavailable; retry later` } });
      return;
    }
    logger.error({ err, path: req.path }, 'unhandled error');
    res.status(500).json({ error: { code: 'INTERNAL', message: 'internal error' } });
  };
}
