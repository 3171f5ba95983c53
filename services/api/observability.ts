/**
 * Per-request observability of `web`: the `baton_http_request_duration_seconds{route,method,status}`
 * histogram and, when tracing is on, a server span `<METHOD> <route>` whose parent is the
 * request's W3C `traceparent` (so a caller's trace continues into the run it starts).
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { SpanStatusCode } from '@opentelemetry/api';
import { observeHttpRequest, runInContext, startServerSpan, tracingEnabled } from '../../lib/index.js';

/** `route` label of a request no route matched (404s, static files): bounded cardinality. */
const UNMATCHED = 'unmatched';

/** The route pattern that answered `req` (e.g. `/v1/runs/:id`), or `unmatched`. */
export function routeOf(req: Request): string {
  const path = (req.route as { path?: unknown } | undefined)?.path;
  return typeof path === 'string' ? `${req.baseUrl}${path}` : UNMATCHED;
}

/** Middleware measuring (and, tracing on, tracing) every request; install it first. */
export function requestObservability(): RequestHandler {
  return (req: Request, res: Response, next: NextFunction): void => {
    const started = process.hrtime.bigint();
    const server = tracingEnabled()
      ? startServerSpan(req.method, req.headers, { 'http.request.method': req.method, 'url.path': req.path })
      : undefined;
    res.once('close', () => {
      const route = routeOf(req);
      const status = res.headersSent ? res.statusCode : 499; // 499: the client went away first
      observeHttpRequest(route, req.method, status, Number(process.hrtime.bigint() - started) / 1e9);
      if (!server) return;
      server.span.updateName(route === UNMATCHED ? req.method : `${req.method} ${route}`);
      server.span.setAttributes({ 'http.route': route, 'http.response.status_code': status });
      if (status >= 500) server.span.setStatus({ code: SpanStatusCode.ERROR });
      server.span.end();
    });
    if (server) runInContext(server.context, next);
    else next();
  };
}
