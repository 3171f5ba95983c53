/**
 * `/mcp`: Baton's MCP server over streamable HTTP (the official SDK's transport), API key as
 * `Authorization: Bearer <key>` on every request. Sessions are stateful (`Mcp-Session-Id`), so
 * a checkpoint can be asked back through elicitation while `start_run` waits; a session belongs
 * to the key that opened it and lives in this process (behind several API instances, route
 * `/mcp` sessions stickily).
 */
import { randomUUID } from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { ForbiddenError, NotFoundError, ValidationError } from '../../lib/index.js';
import type { EngineDeps } from '../engine/index.js';
import { principalOf, requireApiKey, type ApiKeyAuthenticator } from './auth.js';
import { engineBackend } from './mcp/engine-backend.js';
import { createMcpServer, registerDefinitionTools } from './mcp/server.js';
import { documentRoute } from './openapi.js';
import { JsonRpcMessage } from './openapi-schemas.js';

/** Idle sessions are closed after this long, in milliseconds. */
const SESSION_IDLE_MS = 30 * 60 * 1000;

/** The MCP session header (absent only on the `initialize` request). */
const SessionHeader = z.object({ 'mcp-session-id': z.string().optional().meta({ description: 'The session id the `initialize` answer returned' }) });
/** The streamable HTTP transport's answers that are JSON-RPC errors rather than Baton errors. */
const transportErrors = {
  406: { description: 'Accept does not list the media types the transport needs (JSON-RPC error body)', schema: JsonRpcMessage },
} as const;

interface Session {
  transport: StreamableHTTPServerTransport;
  subject: string;
  organizationId: string;
  lastUsedMs: number;
}

export function mcpRouter(deps: EngineDeps, auth: ApiKeyAuthenticator): Router {
  const router = Router();
  const sessions = new Map<string, Session>();
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const s of sessions.values()) if (now - s.lastUsedMs > SESSION_IDLE_MS) void s.transport.close();
  }, 60_000);
  sweep.unref();

  const sessionOf = (req: Request): Session | undefined => {
    const id = req.get('mcp-session-id');
    if (!id) return undefined;
    const session = sessions.get(id);
    if (!session) throw new NotFoundError(`MCP session ${id} not found (it expired or lives on another instance)`);
    const principal = principalOf(req);
    if (principal.subject !== session.subject || principal.organizationId !== session.organizationId) {
      throw new ForbiddenError('this MCP session belongs to another API key');
    }
    session.lastUsedMs = Date.now();
    return session;
  };

  documentRoute({ method: 'post', path: '/mcp', summary: 'MCP over streamable HTTP: send JSON-RPC messages', description: 'The Model Context Protocol\'s streamable HTTP transport. Without `Mcp-Session-Id` the message must be `initialize`, which opens a session (its id comes back in the `Mcp-Session-Id` response header); later messages carry the header. `Accept: application/json, text/event-stream`.', tags: ['mcp'], headers: SessionHeader, body: z.union([JsonRpcMessage, z.array(JsonRpcMessage)]), responses: { 200: { description: 'The JSON-RPC response(s), as JSON or as a server-sent event stream (`text/event-stream`) that may carry requests such as elicitation first', schema: z.union([JsonRpcMessage, z.array(JsonRpcMessage)]) }, 202: { description: 'Accepted: the body held only notifications or responses' }, 400: { description: 'No Mcp-Session-Id header and not an initialize request, or malformed JSON' }, 403: { description: 'The session belongs to another API key' }, 404: { description: 'Unknown or expired session (open a new one)' }, ...transportErrors } });
  router.post('/mcp', requireApiKey(auth), async (req: Request, res: Response) => {
    const existing = sessionOf(req);
    if (existing) return existing.transport.handleRequest(req, res, req.body);
    if (!isInitializeRequest(req.body)) throw new ValidationError('send an initialize request first (no Mcp-Session-Id header)', { field: 'method' });
    const principal = principalOf(req);
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, subject: principal.subject, organizationId: principal.organizationId, lastUsedMs: Date.now() });
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    const backend = engineBackend(deps, principal);
    const server = createMcpServer(backend);
    // One start tool per definition (a key without runs:read gets none).
    await registerDefinitionTools(server, backend).catch(() => []);
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });

  const bySession = async (req: Request, res: Response) => {
    const session = sessionOf(req);
    if (!session) throw new ValidationError('missing Mcp-Session-Id header', { field: 'mcp-session-id' });
    await session.transport.handleRequest(req, res);
  };
  documentRoute({ method: 'get', path: '/mcp', summary: 'MCP: the session\'s server-to-client event stream', description: 'Server-sent events carrying JSON-RPC requests and notifications of the session (`Accept: text/event-stream`).', tags: ['mcp'], headers: SessionHeader, responses: { 200: { description: 'The event stream; each `data:` is a JSON-RPC message', contentType: 'text/event-stream', schema: JsonRpcMessage }, 400: { description: 'Missing Mcp-Session-Id header' }, 403: { description: 'The session belongs to another API key' }, 404: { description: 'Unknown or expired session' }, ...transportErrors, 409: { description: 'The session already has an open stream (JSON-RPC error body)', schema: JsonRpcMessage } } });
  router.get('/mcp', requireApiKey(auth), bySession);
  documentRoute({ method: 'delete', path: '/mcp', summary: 'MCP: close the session', tags: ['mcp'], headers: SessionHeader, responses: { 200: { description: 'Closed' }, 400: { description: 'Missing Mcp-Session-Id header' }, 403: { description: 'The session belongs to another API key' }, 404: { description: 'Unknown or expired session' } } });
  router.delete('/mcp', requireApiKey(auth), bySession);
  return router;
}
