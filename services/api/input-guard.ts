/**
 * The request guard: one check of every input at the edge, before any route runs, so that bad
 * input is a 400 naming the field (never a 500 from Postgres or a stack overflow later).
 *
 * - Every query parameter (name and value), header value and path parameter is free of NUL and
 *   lone surrogates (`lib/json-guard.ts`); a path parameter that is not valid percent-encoding is
 *   refused too.
 * - On a documented route (`documentRoute`), a query parameter it does not declare is refused
 *   (`GET /v1/approvals?runId=` is a 400 naming `runId`, not every approval), and the headers it
 *   declares are validated with their schemas (`Idempotency-Key` ≤ 255 characters,
 *   `Last-Event-ID` an int32). The A2A and MCP protocols and Bull Board own their query strings.
 * - Every JSON body ({@link jsonBodyGuard}): no NUL or lone surrogate in any string or key, and
 *   nesting at most 64 levels deep (`MAX_JSON_DEPTH`); the field named is the offending path
 *   (`input.a.b`).
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { z } from 'zod';
import { ValidationError, cleanJsonText, dottedPath, jsonProblem, markClean, stringProblem } from '../../lib/index.js';
import { ADMIN_PATH } from './admin.js';
import { routeDocs, type RouteDoc } from './openapi.js';

/** Path prefixes whose query strings belong to another protocol or tool (not checked for unknown names). */
const FOREIGN_QUERY_PREFIXES = ['/a2a/', '/mcp', ADMIN_PATH];

interface CompiledRoute {
  method: string;
  pattern: RegExp;
  params: string[];
  doc: RouteDoc;
}

let compiled: { count: number; routes: CompiledRoute[] } | undefined;

/** Documented routes as anchored, case-insensitive patterns (a trailing slash allowed, like express). */
function compiledRoutes(): CompiledRoute[] {
  const docs = routeDocs();
  if (compiled?.count === docs.length) return compiled.routes;
  const routes = docs.map((doc): CompiledRoute => {
    const params: string[] = [];
    const source = doc.path
      .split('/')
      .map((segment) => {
        if (!segment.startsWith(':')) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        params.push(segment.slice(1));
        return '([^/]+)';
      })
      .join('/');
    return { method: doc.method.toUpperCase(), pattern: new RegExp(`^${source}/?$`, 'i'), params, doc };
  });
  compiled = { count: docs.length, routes };
  return routes;
}

function matchRoute(method: string, path: string): { route: CompiledRoute; values: string[] } | undefined {
  const wanted = method === 'HEAD' ? 'GET' : method;
  for (const route of compiledRoutes()) {
    if (route.method !== wanted) continue;
    const m = route.pattern.exec(path);
    if (m) return { route, values: m.slice(1) };
  }
  return undefined;
}

function refuse(field: string, message: string): never {
  throw new ValidationError(`${field}: ${message}`, { field });
}

function checkQuery(req: Request, route: CompiledRoute | undefined): void {
  const query = req.query as Record<string, unknown>;
  for (const [name, value] of Object.entries(query)) {
    const nameProblem = stringProblem(name);
    if (nameProblem) refuse('query', `a parameter name ${nameProblem}`);
    for (const item of Array.isArray(value) ? (value as unknown[]) : [value]) {
      const problem = typeof item === 'string' ? stringProblem(item) : undefined;
      if (problem) refuse(name, problem);
    }
  }
  if (!route || FOREIGN_QUERY_PREFIXES.some((prefix) => req.path.startsWith(prefix))) return;
  const accepted = Object.keys(route.doc.query?.shape ?? {});
  const unknown = Object.keys(query).find((name) => !accepted.includes(name));
  if (unknown !== undefined) {
    const known = accepted.length === 0 ? 'this route takes no query parameters' : `accepted: ${accepted.join(', ')}`;
    refuse(unknown, `unknown query parameter "${unknown}" (${known})`);
  }
}

function checkPathParams(route: CompiledRoute, values: string[]): void {
  route.params.forEach((name, index) => {
    let value: string;
    try {
      value = decodeURIComponent(values[index] ?? '');
    } catch {
      return refuse(name, 'is not valid percent-encoded UTF-8');
    }
    const problem = stringProblem(value);
    if (problem) refuse(name, problem);
  });
}

function checkHeaders(req: Request, route: CompiledRoute | undefined): void {
  for (const [name, value] of Object.entries(req.headers)) {
    for (const item of Array.isArray(value) ? value : [value ?? '']) {
      const problem = stringProblem(item);
      if (problem) refuse(name, problem);
    }
  }
  if (!route?.doc.headers || FOREIGN_QUERY_PREFIXES.some((prefix) => req.path.startsWith(prefix))) return;
  for (const [name, schema] of Object.entries(route.doc.headers.shape)) {
    const parsed = (schema as z.ZodType).safeParse(req.get(name));
    if (!parsed.success) refuse(displayHeader(name), parsed.error.issues[0]?.message ?? 'invalid header');
  }
}

/** `idempotency-key` → `Idempotency-Key`, `last-event-id` → `Last-Event-ID`: as the header is usually written. */
function displayHeader(name: string): string {
  if (name === 'last-event-id') return 'Last-Event-ID';
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/**
 * Middleware checking the query string, the headers and the path parameters of every request
 * (see the module comment); mount it before every router.
 * @throws {ValidationError} (through `next`) naming the parameter or header.
 */
export function requestGuard(): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction): void => {
    try {
      const match = matchRoute(req.method, req.path);
      checkQuery(req, match?.route);
      checkHeaders(req, match?.route);
      if (match) checkPathParams(match.route, match.values);
      next();
    } catch (err) {
      next(err);
    }
  };
}

/** A body the parser decoded as UTF-8 (no charset, or `utf-8`): its bytes say what its text holds. */
function utf8Body(req: Request): boolean {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(req.get('content-type') ?? '')?.[1];
  return charset === undefined || /^utf-?8$/i.test(charset);
}

/**
 * Middleware after the JSON body parser: the parsed body holds no NUL or lone surrogate in any
 * string or key and is nested at most 64 levels deep (`MAX_JSON_DEPTH`). A UTF-8 body whose
 * bytes hold no `\u` escape and fewer than 64 brackets is clean without a walk (`cleanJsonText`);
 * either way the clean body is marked (`markClean`), so the run-input check after it is free.
 * @throws {ValidationError} (through `next`) naming the path, e.g. `input.a.b` (`body` for the root).
 */
export function jsonBodyGuard(): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction): void => {
    const body: unknown = req.body;
    if (body === undefined) return next();
    const fast = req.rawBody !== undefined && utf8Body(req) && cleanJsonText(req.rawBody);
    const problem = fast ? undefined : jsonProblem(body);
    if (!problem) {
      markClean(body);
      return next();
    }
    const field = dottedPath(problem.path, 'body');
    next(new ValidationError(`${field}: ${problem.message}`, { field }));
  };
}
