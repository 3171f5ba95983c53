/**
 * The run console (issue 9 item 5), served by `web`: the single page at `/console` (preact + htm
 * ES modules from `console/` and `node_modules`, no build step, no CDN), its session
 * (`/console/session`: sign in with an API key kept in an HttpOnly cookie, see
 * console-session.ts), the organization-wide live status stream (`/console/stream`), and the
 * approval page a `decideUrl` opens with `GET /v1/approvals/:id/decision?token=…` (HTML for a
 * browser, the token's approval as JSON for the page itself). Everything else the page does goes
 * through the JSON API.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import express, { Router, type Request, type Response } from 'express';
import { and, eq, inArray } from 'drizzle-orm';
import { z } from 'zod';
import { NotFoundError, UnauthorizedError, projectRoot } from '../../lib/index.js';
import { runs } from '../../db/index.js';
import { approvalForToken, type EngineDeps } from '../engine/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator, type Principal } from './auth.js';
import type { ConsoleSessions } from './console-session.js';
import type { RunEventHub } from './event-hub.js';
import { parseBody, parseQuery } from './validate.js';
import { documentRoute, UuidParam } from './openapi.js';
import { ApprovalForLink, ConsoleSessionView, RunListItem } from './openapi-schemas.js';

const SignInBody = z.strictObject({ apiKey: z.string().min(1).max(500) });
/** `?token=` of a decideUrl (absent: 401 for the JSON answer; the HTML page needs none). */
const DecisionPageQuery = z.object({ token: z.string({ error: 'must be given once' }).optional().meta({ description: 'The token of the decideUrl' }) });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Coalescing window of the live status stream, in milliseconds. */
const STREAM_FLUSH_MS = 250;
/** SSE keep-alive interval, in milliseconds. */
const HEARTBEAT_MS = 15_000;

/** Browser modules served from node_modules, by the name the page imports them under. */
function vendorFiles(): Record<string, string> {
  const require = createRequire(import.meta.url);
  return {
    'preact.mjs': require.resolve('preact'), // dist/preact.mjs
    'hooks.mjs': require.resolve('preact/hooks'), // hooks/dist/hooks.mjs
    // htm's `require` entry is CommonJS; its ES module sits beside it.
    'htm.mjs': join(dirname(require.resolve('htm')), 'htm.mjs'),
  };
}

/** The page, with its import map and a Content-Security-Policy allowing only that inline script. */
function consolePage(): { html: string; csp: string } {
  const importMap = JSON.stringify({
    imports: { preact: '/console/vendor/preact.mjs', 'preact/hooks': '/console/vendor/hooks.mjs', htm: '/console/vendor/htm.mjs' },
  });
  const hash = createHash('sha256').update(importMap).digest('base64');
  const html = readFileSync(join(projectRoot(), 'console', 'index.html'), 'utf8').replace('{{IMPORT_MAP}}', importMap);
  const csp = [
    "default-src 'self'",
    `script-src 'self' 'sha256-${hash}'`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
  ].join('; ');
  return { html, csp };
}

function sessionView(principal: Principal, csrfToken: string): Record<string, unknown> {
  return { subject: principal.subject, organizationId: principal.organizationId, scopes: principal.scopes, roles: principal.roles, csrfToken };
}

export function consoleRouter(deps: EngineDeps, auth: ApiKeyAuthenticator, sessions: ConsoleSessions, hub: RunEventHub): Router {
  const router = Router();
  const page = consolePage();
  const sendPage = (res: Response) => {
    res.set({ 'content-security-policy': page.csp, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' });
    res.type('html').send(page.html);
  };

  documentRoute({ method: 'get', path: '/console', summary: 'The run console (HTML)', description: 'A single page (preact + htm ES modules); it signs in through `/console/session` and uses the JSON API.', tags: ['console'], auth: 'none', responses: { 200: { description: 'The page, with a Content-Security-Policy', contentType: 'text/html', schema: z.string() } } });
  router.get('/console', (_req, res) => sendPage(res));
  documentRoute({ method: 'get', path: '/console/assets/:file', summary: "The console's static files (`console/`)", tags: ['console'], auth: 'none', params: z.object({ file: z.string().meta({ description: 'A path under `console/`, e.g. `app.js`' }) }), responses: { 200: { description: 'The file, typed by its extension', contentType: 'application/octet-stream', schema: z.string() }, 404: { description: 'No such file' } } });
  router.use('/console/assets', express.static(join(projectRoot(), 'console'), { index: false, maxAge: 0 }));
  const vendor = vendorFiles();
  documentRoute({ method: 'get', path: '/console/vendor/:file', summary: "The console's browser modules, from node_modules", tags: ['console'], auth: 'none', params: z.object({ file: z.enum(Object.keys(vendor)) }), responses: { 200: { description: 'The ES module', contentType: 'text/javascript', schema: z.string() }, 404: { description: 'No such module' } } });
  router.get('/console/vendor/:file', (req, res) => {
    const path = vendor[String(req.params.file)];
    if (!path) throw new NotFoundError(`no console file ${req.params.file}`);
    res.type('text/javascript').sendFile(path, { maxAge: 3600_000 });
  });

  documentRoute({ method: 'post', path: '/console/session', summary: 'Sign in to the console with an API key', description: 'Keeps the key in an HttpOnly cookie (`Set-Cookie`); later console requests send the cookie and the returned `csrfToken` as `x-csrf-token`.', tags: ['console'], auth: 'none', body: SignInBody, responses: { 200: { description: 'Signed in', schema: ConsoleSessionView }, 400: { description: 'Missing or invalid apiKey' }, 401: { description: 'Invalid API key' } } });
  router.post('/console/session', async (req, res) => {
    const { apiKey } = parseBody(SignInBody, req.body);
    const principal = await auth.resolve(apiKey);
    if (!principal) throw new UnauthorizedError('invalid API key', { field: 'apiKey' });
    sessions.open(req, res, apiKey);
    res.json(sessionView(principal, sessions.csrfFor(apiKey)));
  });

  documentRoute({ method: 'get', path: '/console/session', summary: 'The console session', description: 'Authenticated by the session cookie.', tags: ['console'], auth: 'none', responses: { 200: { description: 'Signed in', schema: ConsoleSessionView }, 401: { description: 'Not signed in' } } });
  router.get('/console/session', async (req, res) => {
    const key = sessions.keyOf(req);
    const principal = key ? await auth.resolve(key) : null;
    if (!key || !principal) throw new UnauthorizedError('not signed in');
    res.json(sessionView(principal, sessions.csrfFor(key)));
  });

  documentRoute({ method: 'delete', path: '/console/session', summary: 'Sign out of the console', description: 'With the session cookie, the session\'s `x-csrf-token` is required.', tags: ['console'], auth: 'none', headers: z.object({ 'x-csrf-token': z.string().optional().meta({ description: 'The `csrfToken` of the session (required with the cookie)' }) }), responses: { 204: { description: 'Signed out: the cookie is cleared (also when there was none)' }, 403: { description: 'The cookie without its CSRF token' } } });
  router.delete('/console/session', (req, res) => {
    sessions.credential(req); // the CSRF check
    sessions.close(req, res);
    res.status(204).end();
  });

  // Live status of the organization's runs: `event: run` with the run's list item on every change.
  documentRoute({ method: 'get', path: '/console/stream', summary: "Live status of the organization's runs (SSE)", description: 'Server-sent events: `event: run` with the run\'s list item whenever one of the organization\'s runs changes (coalesced over 250 ms); `: keep-alive` comments every 15 s. Works with the API key or the console session.', tags: ['console'], scope: 'runs:read', responses: { 200: { description: 'The event stream; each `data:` is a run list item', contentType: 'text/event-stream', schema: RunListItem } } });
  router.get('/console/stream', requireApiKey(auth, 'runs:read'), (req, res) => {
    const { organizationId } = principalOf(req);
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    res.write(': connected\n\n');
    const changed = new Set<string>();
    let timer: NodeJS.Timeout | undefined;
    const flush = async () => {
      timer = undefined;
      const ids = [...changed];
      changed.clear();
      const rows = await deps.database.db
        .select({ id: runs.id, definition: runs.definitionSlug, version: runs.definitionVersion, status: runs.status, createdAt: runs.createdAt, startedAt: runs.startedAt, finishedAt: runs.finishedAt, error: runs.error })
        .from(runs)
        .where(and(inArray(runs.id, ids), eq(runs.organizationId, organizationId)));
      for (const r of rows) res.write(`event: run\ndata: ${JSON.stringify(r)}\n\n`);
    };
    const unsubscribe = hub.subscribeAll((runId) => {
      if (!UUID.test(runId)) return;
      changed.add(runId);
      timer ??= setTimeout(() => {
        flush().catch((err: unknown) => deps.logger.error({ err }, 'console stream failed'));
      }, STREAM_FLUSH_MS);
    });
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    req.on('close', () => {
      unsubscribe();
      clearInterval(heartbeat);
      if (timer) clearTimeout(timer);
      res.end();
    });
  });

  // A decideUrl opened in a browser: the approval page; the page reads the approval as JSON here.
  documentRoute({ method: 'get', path: '/v1/approvals/:id/decision', summary: 'A decideUrl opened: the approval page, or the approval its token is for', description: 'A browser (`Accept: text/html`) gets the approval page; with `Accept: application/json` the answer is the approval the `?token=` is for. No API key: the token authenticates.', tags: ['approvals'], auth: 'none', params: z.object({ id: UuidParam }), query: DecisionPageQuery, responses: { 200: { description: 'The approval, its approver and whether the link was used (JSON); or the page (HTML)', schema: ApprovalForLink }, 400: { description: '`token` given more than once' }, 401: { description: 'Missing or forged token' }, 403: { description: 'A token for another approval or an earlier attempt' }, 404: { description: 'No such approval' }, 410: { description: 'The approval has expired' } } });
  router.get('/v1/approvals/:id/decision', async (req: Request, res) => {
    if (req.accepts(['json', 'html']) === 'html') return sendPage(res);
    const id = String(req.params.id ?? '');
    if (!UUID.test(id)) throw new NotFoundError(`approval ${id} not found`);
    const { token } = parseQuery(DecisionPageQuery, req.query);
    if (!token) throw new UnauthorizedError('missing ?token= (open the decideUrl you received)');
    res.set('cache-control', 'no-store');
    res.json(await approvalForToken(deps, id, token));
  });

  return router;
}
