/** What composition roots outside the API (the `baton` CLI) use of it. */
export { createApp } from './app.js';
export { RunEventHub } from './event-hub.js';
export { serveApp } from './serve.js';
export { answerClientErrors } from './client-errors.js';
export { createMcpServer, registerDefinitionTools, startToolName, MCP_SERVER_INFO, type BatonBackend, type RunSnapshot } from './mcp/server.js';
